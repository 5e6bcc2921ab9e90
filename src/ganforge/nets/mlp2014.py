"""The 2014 paper's MNIST networks (Goodfellow et al., 2014, "Generative Adversarial Nets").

Generator: noise -> two ReLU layers -> sigmoid output. Discriminator: dropout and two maxout
layers -> one logit. Sizes follow the paper's released MNIST configuration (1200 ReLU units,
240 maxout units of 5 pieces, dropout 0.2 on inputs and 0.5 on hidden units).
The conditional variant concatenates a one-hot label to the generator's noise and to the
discriminator's input (Mirza & Osindero, 2014).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Maxout(nn.Module):
    """A linear layer with ``pieces`` outputs per unit, of which the maximum is kept."""

    def __init__(self, in_features: int, units: int, pieces: int) -> None:
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(in_features, units * pieces)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x).view(x.shape[0], self.units, self.pieces).amax(dim=2)


class MLPGenerator(nn.Module):
    """Maps ``z`` of shape (N, z_dim) to images (N, C, H, W) in [-1, 1]."""

    def __init__(
        self, z_dim: int, out_shape: tuple[int, int, int], hidden: int = 1200, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes, self.out_shape = z_dim, num_classes, out_shape
        c, h, w = out_shape
        self.net = nn.Sequential(
            nn.Linear(z_dim + num_classes, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, c * h * w),
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        # The paper's sigmoid gives [0, 1]; rescale to the library's [-1, 1] convention.
        x = torch.sigmoid(self.net(z)) * 2 - 1
        return x.view(-1, *self.out_shape)

    def layers(self) -> list[tuple[str, nn.Module]]:
        """The modules whose outputs are the hidden representations (``ganforge inside``)."""
        return [("hidden1", self.net[1]), ("hidden2", self.net[3])]


class MaxoutDiscriminator(nn.Module):
    """Maps images (N, C, H, W) to one logit per image, shape (N,)."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        units: int = 240,
        pieces: int = 5,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        c, h, w = in_shape
        self.net = nn.Sequential(
            nn.Dropout(0.2),
            Maxout(c * h * w + num_classes, units, pieces),
            nn.Dropout(0.5),
            Maxout(units, units, pieces),
            nn.Dropout(0.5),
            nn.Linear(units, 1),
        )

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        x = x.flatten(1)
        if self.num_classes:
            x = torch.cat([x, F.one_hot(y, self.num_classes).to(x.dtype)], dim=1)
        return self.net(x).squeeze(1)


@torch.no_grad()
def init_output_bias(generator: MLPGenerator, mean_image: Tensor) -> None:
    """Start the sigmoid outputs at the data's mean pixel values, as the paper's released
    configuration did: the first samples are the mean digit rather than flat grey, and the
    discriminator cannot win on brightness alone."""
    p = ((mean_image.flatten() + 1) / 2).clamp(1e-3, 1 - 1e-3)
    generator.net[-1].bias.copy_(torch.logit(p))


def build(spec, z_dim: int, width: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    shape = (spec.channels, spec.image_size, spec.image_size)
    g = MLPGenerator(z_dim, shape, hidden=width, num_classes=num_classes)
    d = MaxoutDiscriminator(shape, units=max(width // 5, 16), num_classes=num_classes)
    return g, d
