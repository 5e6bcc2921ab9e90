"""Metrics on a classifier's class probabilities: coverage of the classes and the score in
the form of the Inception Score, exp E_x[KL(p(y|x) || p(y))] (Salimans et al., 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Coverage:
    histogram: list[float]  # fraction of samples predicted as each class
    covered: int  # classes with at least half their fair share (0.5 / K)
    mean_confidence: float  # mean of the top class probability


def class_coverage(probs: Tensor) -> Coverage:
    """Coverage of ``probs`` (N, K) rows of class probabilities; mode collapse shows here."""
    n, k = probs.shape
    counts = torch.bincount(probs.argmax(1), minlength=k).double() / n
    covered = int((counts >= 0.5 / k).sum())
    return Coverage(counts.tolist(), covered, probs.max(1).values.double().mean().item())


def confident_fraction(probs: Tensor, threshold: float = 0.9) -> float:
    """Fraction of rows of ``probs`` (N, K) whose top class probability is >= ``threshold``."""
    return (probs.max(1).values >= threshold).double().mean().item()


def classifier_score(probs: Tensor, eps: float = 1e-12) -> float:
    """exp(E[KL(p(y|x) || p(y))]): from 1 (no information) to K (confident and balanced)."""
    p = probs.double().clamp_min(eps)
    marginal = p.mean(0, keepdim=True)
    kl = (p * (p.log() - marginal.log())).sum(1)
    return kl.mean().exp().item()
