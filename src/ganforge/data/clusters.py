"""k-means clusters of a dataset's images, found without labels.

A GAN conditioned on such clusters (the idea of self-conditioned GANs, Liu et al., 2020)
learns each cluster as a simpler distribution than the whole data, which is what makes the
class-conditional DCGAN fast; no label is ever read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import GanforgeError


def _sq_distances(x: Tensor, centres: Tensor) -> Tensor:
    return (x.square().sum(1, keepdim=True) - 2 * x @ centres.T + centres.square().sum(1)).clamp_(0)


def assign(x: Tensor, centres: Tensor, batch: int = 8192) -> Tensor:
    """Index of the nearest centre for every row of ``x``."""
    return torch.cat(
        [_sq_distances(x[i : i + batch], centres).argmin(1) for i in range(0, len(x), batch)]
    )


def kmeans(
    x: Tensor, k: int, iterations: int = 10, seed: int = 0, init_sample: int = 10_000
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means on the rows of ``x`` (N, D): ``(centres (k, D), assignment (N,))``.

    Seeded by k-means++ (Arthur & Vassilvitskii, 2007) on a random ``init_sample`` rows (its
    k sequential passes are the slow part), with a fixed seed. An emptied cluster is
    re-seeded at the point farthest from its centre."""
    if not 1 <= k <= len(x):
        raise GanforgeError(f"k-means needs 1 <= k <= {len(x)} points, got k={k}")
    x = x.float()
    g = torch.Generator().manual_seed(seed)
    pool = x[torch.randperm(len(x), generator=g)[: max(init_sample, k)]]
    centres = pool[torch.randint(len(pool), (1,), generator=g)]
    nearest = _sq_distances(pool, centres).squeeze(1)
    for _ in range(1, k):
        pick = torch.multinomial(nearest.double() + 1e-12, 1, generator=g)
        centres = torch.cat([centres, pool[pick]])
        nearest = torch.minimum(nearest, _sq_distances(pool, pool[pick]).squeeze(1))
    for _ in range(iterations):
        labels = assign(x, centres)
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            far = _sq_distances(x, centres).gather(1, labels[:, None]).squeeze(1)
            centres[empty] = x[far.topk(int(empty.sum())).indices]
    return centres, assign(x, centres)


def cluster_images(images: Tensor, k: int, seed: int = 0) -> Tensor:
    """Cluster index (N,) of each uint8 NCHW image, by k-means on its pixels (averaged 2x2
    down to at most about 16 px a side: the shape of a digit, at a quarter of the cost)."""
    x = images.float() / 255
    while x.shape[-1] >= 28:
        x = F.avg_pool2d(x, 2)
    _, assignment = kmeans(x.flatten(1), k, seed=seed)
    return assignment
