"""Mode coverage: how many of a dataset's modes the samples reach, and how evenly.

Stacked MNIST: each channel of a sample is read by the reference MNIST classifier; the three
digits name one of 1000 modes. Reported, as in VEEGAN (Srivastava et al., 2017), PacGAN
(Lin et al., 2018) and R3GAN (Huang et al., 2024): the number of modes with at least one
sample, and KL(sample mode histogram || uniform over the 1000 modes).

2-D mixtures: each sample belongs to its nearest centre; it is "high quality" when it lies
within 3 standard deviations of it, and a mode is captured when it has high-quality samples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ganforge.data.stacked import MODES
from ganforge.errors import GanforgeError


@dataclass
class ModeCoverage:
    modes: int  # modes with at least one sample
    total: int  # modes there are
    kl: float  # KL(sample histogram || uniform), nats
    samples: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def histogram_kl(counts: Tensor) -> float:
    """KL(p || uniform) of a histogram of counts, p = counts / total, in nats."""
    p = counts.double() / counts.sum()
    nonzero = p[p > 0]
    return float((nonzero * (nonzero * len(counts)).log()).sum())


@torch.inference_mode()
def stacked_probabilities(classifier: nn.Module, images: Tensor, batch: int = 2000) -> Tensor:
    """The classifier's class probabilities (N, 3, K) for each channel of float [-1, 1]
    images (N, 3, 28, 28), every channel read as a gray image."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise GanforgeError(f"stacked images must be (N, 3, H, W), got {tuple(images.shape)}")
    out = []
    for i in range(0, len(images), batch):
        chunk = images[i : i + batch].float()
        logits = classifier(chunk.flatten(0, 1).unsqueeze(1))
        out.append(logits.softmax(1).view(len(chunk), 3, -1))
    return torch.cat(out)


def stacked_digits(classifier: nn.Module, images: Tensor) -> Tensor:
    """The three digits (N, 3) the classifier reads in the channels of ``images``."""
    return stacked_probabilities(classifier, images).argmax(2)


def digits_coverage(digits: Tensor) -> ModeCoverage:
    """Modes covered and KL to uniform of the three-digit modes ``digits`` (N, 3) name."""
    modes = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    counts = torch.bincount(modes.cpu(), minlength=MODES)
    return ModeCoverage(int((counts > 0).sum()), MODES, histogram_kl(counts), len(digits))


def stacked_mode_coverage(classifier: nn.Module, images: Tensor) -> ModeCoverage:
    """Modes covered and KL to uniform of float [-1, 1] Stacked MNIST images."""
    return digits_coverage(stacked_digits(classifier, images))


@dataclass
class MixtureCoverage:
    modes: int  # centres with at least one high-quality sample
    total: int
    high_quality: float  # share of samples within 3 std of their nearest centre
    kl: float  # KL(high-quality samples' centre histogram || uniform)
    samples: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def mixture_coverage(samples: Tensor, centres: Tensor, std: float) -> MixtureCoverage:
    """Coverage of 2-D ``samples`` (N, 2) of a mixture of Gaussians at ``centres`` (K, 2)
    with standard deviation ``std``."""
    if samples.dim() != 2 or samples.shape[1] != centres.shape[1]:
        raise GanforgeError(f"samples must be (N, {centres.shape[1]}), got {tuple(samples.shape)}")
    distance, nearest = torch.cdist(samples.double(), centres.double()).min(dim=1)
    good = distance <= 3 * std
    counts = torch.bincount(nearest[good], minlength=len(centres))
    kl = histogram_kl(counts) if good.any() else math.inf
    return MixtureCoverage(
        int((counts > 0).sum()), len(centres), float(good.double().mean()), kl, len(samples)
    )
