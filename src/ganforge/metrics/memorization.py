"""Did the generator copy its training set? Nearest-training-image distances of samples,
against the same distances for real held-out images."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def nearest_distances(x: Tensor, reference: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """Euclidean distance from each row of ``x`` to its nearest row of ``reference``, and
    that row's index. Inputs are flattened; matrix products in float32 blocks."""
    x, ref = x.flatten(1).float(), reference.flatten(1).float()
    ref_sq = (ref * ref).sum(1)
    dists, index = [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        d2 = (xb * xb).sum(1, keepdim=True) + ref_sq[None, :] - 2 * xb @ ref.T
        best = d2.min(dim=1)
        dists.append(best.values.clamp_min(0).sqrt())
        index.append(best.indices)
    return torch.cat(dists), torch.cat(index)


@dataclass
class Memorization:
    fraction_copied: float  # samples closer to train than the 1st percentile of test images
    threshold: float  # that 1st percentile distance
    median_sample_distance: float
    median_test_distance: float


def memorization(
    samples: Tensor, train: Tensor, test: Tensor | None = None, test_distances: Tensor | None = None
) -> Memorization:
    """Compare samples' nearest-training distances with held-out ``test`` images' (or their
    precomputed ``test_distances``, which do not depend on the generator)."""
    sample_d, _ = nearest_distances(samples, train)
    if test_distances is None:
        if test is None:
            raise ValueError("give test images or their test_distances")
        test_distances, _ = nearest_distances(test, train)
    test_d = test_distances
    threshold = torch.quantile(test_d.double(), 0.01).item()
    return Memorization(
        (sample_d <= threshold).double().mean().item(),
        threshold,
        sample_d.median().item(),
        test_d.median().item(),
    )
