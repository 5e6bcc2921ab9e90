"""Gradient penalties on the discriminator, each with its own weight and interval.

- ``r1`` (Mescheder et al., 2018): gamma/2 E[|grad D(x)|^2] on real images;
- ``r2``: the same on generated images (R3GAN uses both);
- ``gp`` (WGAN-GP, Gulrajani et al., 2017): lambda E[(|grad D(x_hat)| - 1)^2] on random
  points between real and generated images.

A penalty applied only every ``every`` steps (lazy regularization, Karras et al., 2020) is
multiplied by ``every`` so that its average strength does not depend on the interval.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.losses.adversarial import Critic, Terms
from ganforge.registry import Registry


def full_precision(x: Tensor) -> Tensor:
    """``x`` in at least float32 (half-precision images from autocast are promoted)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def input_gradients(d: Critic, x: Tensor, labels: Tensor | None) -> Tensor:
    """d(sum of D's outputs)/dx per image, flattened to (N, D), kept differentiable. Runs in
    float32 whatever precision ``x`` came in (generated images may be bf16 under autocast)."""
    x = full_precision(x.detach()).requires_grad_(True)
    out = d(x, labels).float().sum()
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    # Adding 0 * D(x) leaves the values as they are but puts every weight in the graph
    # (the last bias has no gradient through grad D(x)): DDP waits for every weight's.
    return grad.flatten(1) + 0 * out


class Regularizer:
    """A penalty ``scale * weight * value`` added to the discriminator's loss."""

    name = ""
    scale = 1.0

    def __init__(self, weight: float, every: int = 1) -> None:
        self.weight, self.every = weight, every

    def value(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        raise NotImplementedError

    def __call__(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Terms:
        value = self.value(d, full_precision(real), full_precision(fake.detach()), labels)
        loss = value * (self.scale * self.weight * self.every)
        return Terms(loss, {self.name: value.detach()})


REGULARIZERS: Registry[type[Regularizer]] = Registry("regularizer")


@REGULARIZERS.register("r1")
class R1(Regularizer):
    name, scale = "r1", 0.5

    def value(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        return input_gradients(d, real, labels).square().sum(1).mean()


@REGULARIZERS.register("r2")
class R2(Regularizer):
    name, scale = "r2", 0.5

    def value(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        return input_gradients(d, fake, labels).square().sum(1).mean()


@REGULARIZERS.register("gp")
class GradientPenalty(Regularizer):
    name, scale = "gp", 1.0

    def value(self, d: Critic, real: Tensor, fake: Tensor, labels: Tensor | None) -> Tensor:
        t = torch.rand(len(real), *([1] * (real.dim() - 1)), device=real.device)
        mixed = torch.lerp(real.detach(), fake, t.to(real.dtype))
        norms = input_gradients(d, mixed, labels).norm(dim=1)
        return (norms - 1).square().mean()
