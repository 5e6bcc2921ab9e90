"""Fréchet distance between Gaussians fitted to two feature sets (FID, Heusel et al., 2017).

FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), computed in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def feature_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of an (N, D) feature array, in float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"features must be (N >= 2, D), got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu_a: ArrayLike, cov_a: ArrayLike, mu_b: ArrayLike, cov_b: ArrayLike) -> float:
    """The Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b).

    Tr((S_a S_b)^(1/2)) is the sum of square roots of the eigenvalues of
    S_a^(1/2) S_b S_a^(1/2), a symmetric PSD matrix: no complex sqrtm, no ill-conditioning fudge.
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(cov_a).astype(np.float64), np.atleast_2d(cov_b).astype(np.float64)
    w, v = np.linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root_a @ cov_b @ root_a
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def fid(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """FID between two (N, D) feature sets."""
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))
