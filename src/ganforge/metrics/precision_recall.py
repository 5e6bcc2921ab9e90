"""Improved precision and recall (Kynkäänniemi et al., 2019).

Each set's manifold is the union of balls around its points, with radius the distance to the
k-th nearest neighbour within the set. Precision: the fraction of generated points inside the
real manifold. Recall: the fraction of real points inside the generated manifold.
"""

from __future__ import annotations

import torch
from torch import Tensor


def kth_radii(x: Tensor, k: int = 3, batch: int = 1000) -> Tensor:
    """Each point's distance to its k-th nearest neighbour within ``x``: its ball's radius."""
    x = x.double()
    radii = []
    for i in range(0, len(x), batch):
        d = torch.cdist(x[i : i + batch], x)
        # k + 1: the nearest point to each is itself, at distance 0.
        radii.append(d.kthvalue(k + 1, dim=1).values)
    return torch.cat(radii)


def _inside(points: Tensor, centres: Tensor, radii: Tensor, batch: int) -> Tensor:
    inside = []
    for i in range(0, len(points), batch):
        d = torch.cdist(points[i : i + batch], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return torch.cat(inside)


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, batch: int = 1000, real_radii: Tensor | None = None
) -> tuple[float, float]:
    """(precision, recall) of ``fake`` (N, D) features against ``real`` (M, D) features.

    ``real_radii`` (from :func:`kth_radii`) saves recomputing the real manifold each call."""
    real, fake = real.double(), fake.double()
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points in each set")
    if real_radii is None:
        real_radii = kth_radii(real, k, batch)
    fake_radii = kth_radii(fake, k, batch)
    precision = _inside(fake, real, real_radii, batch).double().mean().item()
    recall = _inside(real, fake, fake_radii, batch).double().mean().item()
    return precision, recall
