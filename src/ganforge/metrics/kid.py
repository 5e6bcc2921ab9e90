"""Kernel Inception Distance (Bińkowski et al., 2018): an unbiased MMD^2 estimate with the
cubic polynomial kernel k(x, y) = (x.y / D + 1)^3, averaged over random subsets."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples ``x`` (m, D) and ``y`` (n, D) with the cubic kernel."""
    d = x.shape[1]
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    sum_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    sum_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(sum_xx + sum_yy - 2 * k_xy.mean())


def kid(
    features_a: ArrayLike,
    features_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID as (mean, standard deviation) over ``subsets`` random subsets of each set."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least 2 features in each set")
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)]
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
