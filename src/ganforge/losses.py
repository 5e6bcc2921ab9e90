"""GAN value functions, registered by name.

A loss owns the discriminator's forward passes, so that losses needing more than logits
(gradient penalties on real or fake images, relativistic pairings) fit the same interface
without the training loop changing. Each method returns the scalar to minimise and the
logits it saw (for the D(x) / D(G(z)) statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from ganforge.registry import Registry

Critic = Callable[[Tensor, Tensor | None], Tensor]


@dataclass
class DiscriminatorTerms:
    loss: Tensor
    real_logits: Tensor
    fake_logits: Tensor


@dataclass
class GeneratorTerms:
    loss: Tensor
    fake_logits: Tensor


class GANLoss:
    """Base: a value function on logits. Subclasses override ``d_value``/``g_value``,
    or the whole ``discriminator``/``generator`` methods when they need images (penalties)."""

    def d_value(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def g_value(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def discriminator(
        self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None
    ) -> DiscriminatorTerms:
        real_logits, fake_logits = d(real, labels), d(fake, labels)
        return DiscriminatorTerms(self.d_value(real_logits, fake_logits), real_logits, fake_logits)

    def generator(self, d: Critic, fake: Tensor, labels: Tensor | None) -> GeneratorTerms:
        fake_logits = d(fake, labels)
        return GeneratorTerms(self.g_value(fake_logits), fake_logits)


LOSSES: Registry[type[GANLoss]] = Registry("loss")


def _d_minimax(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    # -[log D(x) + log(1 - D(G(z)))], with D = sigmoid(logit); softplus keeps it stable.
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


@LOSSES.register("minimax")
class MinimaxLoss(GANLoss):
    """The paper's value function: G minimises log(1 - D(G(z))) (saturates early on)."""

    def d_value(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return _d_minimax(real_logits, fake_logits)

    def g_value(self, fake_logits: Tensor) -> Tensor:
        return -F.softplus(fake_logits).mean()


@LOSSES.register("nonsaturating")
class NonSaturatingLoss(GANLoss):
    """The paper's practical variant: G maximises log D(G(z)) for strong early gradients."""

    def d_value(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return _d_minimax(real_logits, fake_logits)

    def g_value(self, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits).mean()


def build_loss(name: str) -> GANLoss:
    return LOSSES.get(name)()
