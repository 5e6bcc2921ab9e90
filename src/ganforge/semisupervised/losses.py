"""The semi-supervised game's value functions (Salimans et al., 2016, section 5).

The classifier's K logits ``l`` stand for K + 1 classes whose "fake" logit is fixed at 0, so
``p(real | x) = Z / (Z + 1)`` with ``Z = sum_k exp(l_k)``, and ``log Z = logsumexp(l)``:

- supervised: cross-entropy of the labelled images' K logits against their labels;
- unsupervised: ``-log p(real | x)`` on unlabelled images plus ``-log p(fake | G(z))`` on
  generated ones. ``-log(Z/(Z+1)) = softplus(log Z) - log Z`` and
  ``-log(1/(Z+1)) = softplus(log Z)``. Both halves are weighted 1/2, as in the paper's code;
- generator: feature matching, the squared distance between the mean features of real and
  generated batches on an intermediate classifier layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class ClassifierLoss:
    loss: Tensor
    supervised: Tensor
    unsupervised: Tensor


def classifier_loss(
    logits_labelled: Tensor,
    labels: Tensor,
    logits_unlabelled: Tensor,
    logits_fake: Tensor,
    unsupervised_weight: float = 1.0,
) -> ClassifierLoss:
    """The discriminator's loss: supervised cross-entropy + weight x the real/fake terms."""
    supervised = F.cross_entropy(logits_labelled, labels)
    lse_real = torch.logsumexp(logits_unlabelled, dim=1)
    lse_fake = torch.logsumexp(logits_fake, dim=1)
    unsupervised = (
        0.5 * (F.softplus(lse_real) - lse_real).mean() + 0.5 * F.softplus(lse_fake).mean()
    )
    return ClassifierLoss(supervised + unsupervised_weight * unsupervised, supervised, unsupervised)


def feature_matching(
    features_real: Tensor,
    features_fake: Tensor,
    batch_mean: Callable[[Tensor], Tensor] = lambda x: x.mean(0),
) -> Tensor:
    """Mean over units of (mean real feature - mean generated feature)^2; ``batch_mean`` is
    the mean over the batch (over the global batch on several processes)."""
    return (batch_mean(features_real) - batch_mean(features_fake)).square().mean()
