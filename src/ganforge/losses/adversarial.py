"""Adversarial losses: what the discriminator and the generator minimise, on one interface.

Every loss sees the real and the generated batch (and labels) in both players' phases, so
losses that pair real with fake logits (relativistic) fit beside those that do not. Each
phase returns :class:`Terms`: the scalar to minimise and named statistics (0-dim tensors on
the device, read once per logging window).

Logits are the critic's raw outputs, one per image. For ``minimax`` and ``nonsaturating``
they are log-odds of "real", so the statistics report D(x) = sigmoid(logit); the other
losses' critics have no probability, and their statistics are the raw mean outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.registry import Registry

Critic = Callable[[Tensor, Tensor | None], Tensor]


@dataclass
class Terms:
    """A phase's loss to minimise and its statistics (detached 0-dim tensors)."""

    loss: Tensor
    stats: dict[str, Tensor]


class AdversarialLoss:
    """Base class: subclasses give ``d_value`` and ``g_value`` on logits."""

    # Logits are log-odds of "real": statistics show D(x) in [0, 1].
    probabilistic = False
    # The generator's value needs the critic's real logits too (relativistic pairings).
    generator_sees_real = False
    # The discriminator's loss is a sum of one term per image (``d_rows``).
    separable = True

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        """The discriminator's loss of each real and each generated row, for losses that are
        a sum over rows (differentially private training clips every row's gradient)."""
        raise NotImplementedError(f"{type(self).__name__} pairs rows; it has no per-row loss")

    def d_value(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_rows, fake_rows = self.d_rows(real_logits, fake_logits)
        return real_rows.mean() + fake_rows.mean()

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def output_stats(self, real_logits: Tensor, fake_logits: Tensor) -> dict[str, Tensor]:
        r, f = real_logits.detach().float(), fake_logits.detach().float()
        if self.probabilistic:
            return {"d_real": torch.sigmoid(r).mean(), "d_fake": torch.sigmoid(f).mean()}
        return {"critic_real": r.mean(), "critic_fake": f.mean()}

    def discriminator(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Terms:
        """The discriminator's phase; ``fake`` should be detached from the generator."""
        real_logits, fake_logits = d(real, labels), d(fake, labels)
        loss = self.d_value(real_logits, fake_logits)
        stats = {"loss_d": loss.detach().float(), **self.output_stats(real_logits, fake_logits)}
        return Terms(loss, stats)

    def generator(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Terms:
        """The generator's phase; gradients reach the generator through ``fake`` only."""
        real_logits = None
        if self.generator_sees_real:
            with torch.no_grad():
                real_logits = d(real, labels)
        loss = self.g_value(real_logits, d(fake, labels))
        return Terms(loss, {"loss_g": loss.detach().float()})


LOSSES: Registry[type[AdversarialLoss]] = Registry("loss")


def _d_logistic(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    # -[log D(x) + log(1 - D(G(z)))], D = sigmoid(logit); softplus keeps it stable.
    return F.softplus(-real_logits), F.softplus(fake_logits)


@LOSSES.register("minimax")
class MinimaxLoss(AdversarialLoss):
    """The 2014 paper's value function: G minimises log(1 - D(G(z))) (saturates early on)."""

    probabilistic = True

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        return _d_logistic(real_logits, fake_logits)

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        return -F.softplus(fake_logits).mean()


@LOSSES.register("nonsaturating")
class NonSaturatingLoss(AdversarialLoss):
    """The 2014 paper's practical variant: G maximises log D(G(z)) for strong early gradients."""

    probabilistic = True

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        return _d_logistic(real_logits, fake_logits)

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits).mean()


@LOSSES.register("hinge")
class HingeLoss(AdversarialLoss):
    """Hinge loss (Lim & Ye, 2017; Miyato et al., 2018): D pushes real logits above 1 and fake
    below -1; G raises the fake logits."""

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        return F.relu(1 - real_logits), F.relu(1 + fake_logits)

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


@LOSSES.register("wasserstein")
class WassersteinLoss(AdversarialLoss):
    """WGAN (Arjovsky et al., 2017): the critic estimates E[D(x)] - E[D(G(z))]; pair it with a
    Lipschitz constraint (``gp``, spectral normalization)."""

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        return -real_logits, fake_logits

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        return -fake_logits.mean()


@LOSSES.register("least-squares")
class LeastSquaresLoss(AdversarialLoss):
    """LSGAN (Mao et al., 2017) with targets 1 for real and 0 for fake: D minimises
    ((D(x) - 1)^2 + D(G(z))^2) / 2, G minimises (D(G(z)) - 1)^2 / 2."""

    def d_rows(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
        return 0.5 * (real_logits - 1).square(), 0.5 * fake_logits.square()

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits - 1).square().mean()


@LOSSES.register("relativistic")
class RelativisticLoss(AdversarialLoss):
    """The relativistic pairing loss RpGAN (Jolicoeur-Martineau, 2018; R3GAN, Huang et al.,
    2024): each real image is paired with a generated one, D minimises
    softplus(D(G(z)) - D(x)) and G minimises softplus(D(x) - D(G(z)))."""

    generator_sees_real = True
    separable = False

    def d_value(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        return F.softplus(fake_logits - real_logits).mean()

    def g_value(self, real_logits: Tensor | None, fake_logits: Tensor) -> Tensor:
        assert real_logits is not None  # generator_sees_real
        return F.softplus(real_logits - fake_logits).mean()


def build_loss(name: str) -> AdversarialLoss:
    return LOSSES.get(name)()
