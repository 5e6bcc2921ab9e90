"""Metrics against closed forms and independent (scipy / naive) implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.special import logsumexp

from ganforge.metrics import (
    class_coverage,
    classifier_score,
    fid,
    frechet_distance,
    kid,
    memorization,
    parzen,
    parzen_log_likelihood,
    precision_recall,
)
from ganforge.metrics.parzen import choose_sigma


def _scipy_frechet(mu_a, cov_a, mu_b, cov_b) -> float:
    # The textbook formula with scipy's general matrix square root: an independent route.
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a + cov_b - 2 * root))


def _random_cov(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_of_diagonal_gaussians_matches_the_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    var_a, var_b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    expected = ((mu_a - mu_b) ** 2).sum() + (var_a + var_b - 2 * np.sqrt(var_a * var_b)).sum()
    got = frechet_distance(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert got == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(7.25 + 4 + 1 + 0)  # by hand, term by term


def test_frechet_distance_matches_scipy_on_full_covariances():
    rng = np.random.default_rng(0)
    for d in (2, 16, 64):
        mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
        cov_a, cov_b = _random_cov(rng, d), _random_cov(rng, d)
        ours = frechet_distance(mu_a, cov_a, mu_b, cov_b)
        assert ours == pytest.approx(_scipy_frechet(mu_a, cov_a, mu_b, cov_b), rel=1e-6)
        assert frechet_distance(mu_a, cov_a, mu_a, cov_a) == pytest.approx(0, abs=1e-8)


def test_fid_on_features_matches_scipy_and_is_zero_on_identical_sets():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(600, 20))
    b = rng.normal(loc=0.3, scale=1.5, size=(500, 20))
    expected = _scipy_frechet(
        a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    )
    assert fid(a, b) == pytest.approx(expected, rel=1e-3)
    assert fid(a, a) == pytest.approx(0, abs=1e-8)


def _naive_mmd2(x, y):
    d = x.shape[1]

    def k(u, v):
        return (float(u @ v) / d + 1) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_matches_a_naive_implementation():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 5)), rng.normal(loc=0.5, size=(40, 5))
    # One subset of the whole set: a permutation, to which MMD is blind.
    mean, std = kid(a, b, subsets=1, subset_size=40)
    assert mean == pytest.approx(_naive_mmd2(a, b), rel=1e-9)
    assert std == 0.0
    # Unbiased: near zero for two samples of one distribution, clearly positive otherwise.
    c, d, e = (rng.normal(size=(400, 5)) for _ in range(3))
    same, _ = kid(c, d, subsets=10, subset_size=200)
    shifted, _ = kid(c, e + 0.5, subsets=10, subset_size=200)
    assert abs(same) < shifted / 10


def test_parzen_matches_a_naive_logsumexp():
    g = torch.Generator().manual_seed(0)
    samples, x = torch.randn(50, 6, generator=g), torch.randn(7, 6, generator=g)
    sigma = 0.7
    d2 = ((x.double()[:, None, :] - samples.double()[None, :, :]) ** 2).sum(-1).numpy()
    expected = (
        logsumexp(-d2 / (2 * sigma**2), axis=1)
        - math.log(50)
        - 3 * math.log(2 * math.pi * sigma**2)
    )
    got = parzen_log_likelihood(x, samples, sigma, batch=3).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_parzen_on_gaussian_samples_matches_the_analytic_log_likelihood():
    # Samples from N(0, I) smoothed by a sigma kernel have density N(0, (1 + sigma^2) I).
    g = torch.Generator().manual_seed(3)
    d, sigma = 2, 0.3
    samples = torch.randn(10_000, d, generator=g, dtype=torch.float64)
    test = torch.randn(2_000, d, generator=g, dtype=torch.float64)
    result = parzen(test, samples, sigma=sigma)
    var = 1 + sigma**2
    analytic = (-d / 2 * math.log(2 * math.pi * var) - (test**2).sum(1) / (2 * var)).mean().item()
    assert abs(result.mean - analytic) < 2 * result.std_error, (result, analytic)
    assert result.sigma == sigma


def test_sigma_is_chosen_on_validation_points():
    g = torch.Generator().manual_seed(4)
    samples = torch.randn(2_000, 2, generator=g)
    validation = torch.randn(500, 2, generator=g)
    best = choose_sigma(validation, samples, sigmas=(0.01, 0.3, 10.0))
    assert best == 0.3  # too narrow overfits the samples, too wide blurs everything
    with pytest.raises(ValueError):
        parzen(validation, samples)


def test_precision_and_recall_of_a_set_against_itself_are_one():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(5))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)


def test_precision_and_recall_against_a_far_disjoint_set_are_zero():
    g = torch.Generator().manual_seed(6)
    real, fake = torch.randn(300, 8, generator=g), torch.randn(200, 8, generator=g) + 100
    assert precision_recall(real, fake, batch=64) == (0.0, 0.0)


def test_precision_stays_high_and_recall_drops_for_a_collapsed_generator():
    g = torch.Generator().manual_seed(7)
    real = torch.randn(1000, 2, generator=g)
    collapsed = 0.05 * torch.randn(1000, 2, generator=g)  # all samples near one mode
    precision, recall = precision_recall(real, collapsed)
    assert precision > 0.9 and recall < 0.2


def test_coverage_flags_a_generator_that_only_makes_ones():
    ones = torch.zeros(500, 10)
    ones[:, 1] = 1.0
    cov = class_coverage(ones)
    assert cov.covered == 1 and cov.histogram[1] == 1.0 and cov.mean_confidence == 1.0
    assert classifier_score(ones) == pytest.approx(1.0)

    balanced = torch.eye(10).repeat(50, 1)
    assert class_coverage(balanced).covered == 10
    assert classifier_score(balanced) == pytest.approx(10.0, rel=1e-6)


def test_memorization_flags_copies_of_training_images_and_not_fresh_ones():
    g = torch.Generator().manual_seed(8)
    train, test = torch.rand(2_000, 64, generator=g), torch.rand(1_000, 64, generator=g)
    copies = memorization(train[:300], train, test)
    assert copies.fraction_copied == 1.0 and copies.median_sample_distance < 1e-3
    fresh = memorization(torch.rand(1_000, 64, generator=g), train, test)
    assert fresh.fraction_copied < 0.05
