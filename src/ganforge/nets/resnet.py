"""A modern residual generator and critic without normalization layers, after R3GAN
(Huang et al., 2024, "The GAN is dead; long live the GAN!").

What it takes from that design:
- residual blocks ``x + 1x1 conv -> leaky ReLU -> grouped 3x3 conv -> leaky ReLU -> 1x1 conv``
  (an inverted bottleneck: the middle is ``expansion`` times wider, split into groups of
  ``group_size`` channels);
- no batch or layer normalization in either network: the R1/R2 penalties keep the game
  stable instead, and no sample depends on the rest of its batch;
- fix-up style initialization: the last convolution of every residual branch starts at zero
  and the others are scaled by ``L ** (-1 / (2m - 2))`` (L blocks, m = 3 layers per branch),
  so every block starts as the identity and depth does not blow up the signal;
- bilinear resampling between stages (a 1x1 convolution changes the channel count first).

The stages follow the resolution as in DCGAN: a ``base`` x ``base`` map (base 4..7) doubled
until it reaches the image size; the channel count halves at every doubling, from
``4 * width`` at the base (capped there) to ``width`` at full size.
A conditional generator embeds the label beside ``z``; a conditional critic adds a
projection term <embed(y), features> (Miyato & Koyama, 2018).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.nets.dcgan import layout, projection_logit

SLOPE = 0.2


def stage_channels(image_size: int, width: int) -> tuple[int, list[int]]:
    """``(base, channels per stage)`` from the base resolution up to ``image_size``."""
    base, n = layout(image_size)
    return base, [width * 2 ** min(n - i, 2) for i in range(n + 1)]


def _kaiming(conv: nn.Conv2d | nn.Linear, scale: float = 1.0) -> None:
    fan_in = conv.weight[0].numel()
    nn.init.normal_(conv.weight, 0.0, scale * math.sqrt(2 / (1 + SLOPE**2)) / math.sqrt(fan_in))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class ResidualBlock(nn.Module):
    """``x + f(x)``, ``f`` an inverted bottleneck with a grouped 3x3 convolution."""

    def __init__(self, channels: int, expansion: int, group_size: int, blocks: int) -> None:
        super().__init__()
        hidden = channels * expansion
        groups = max(1, hidden // group_size)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.mix = nn.Conv2d(hidden, hidden, 3, padding=1, groups=groups)
        self.reduce = nn.Conv2d(hidden, channels, 1, bias=False)
        scale = blocks ** (-1 / (2 * 3 - 2))
        _kaiming(self.expand, scale)
        _kaiming(self.mix, scale)
        nn.init.zeros_(self.reduce.weight)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.expand(x), SLOPE)
        h = F.leaky_relu(self.mix(h), SLOPE)
        return x + self.reduce(h)


def _stages(
    widths: list[int], depths: list[int], expansion: int, group_size: int
) -> tuple[nn.ModuleList, nn.ModuleList]:
    """One sequence of ``depths[i]`` residual blocks per stage, and the 1x1 convolutions
    that change the channel count from one stage to the next."""
    total = sum(depths)
    stages = nn.ModuleList(
        nn.Sequential(*(ResidualBlock(c, expansion, group_size, total) for _ in range(n)))
        for c, n in zip(widths, depths, strict=True)
    )
    transitions = nn.ModuleList(
        nn.Conv2d(a, b, 1) for a, b in zip(widths, widths[1:], strict=False)
    )
    for t in transitions:
        _kaiming(t)
    return stages, transitions


class ResNetGenerator(nn.Module):
    """Maps ``z`` (N, z_dim) [and labels (N,)] to images (N, C, S, S) in [-1, 1]."""

    def __init__(
        self,
        z_dim: int,
        channels: int,
        image_size: int,
        width: int = 32,
        num_classes: int = 0,
        depth: int = 1,
        expansion: int = 2,
        group_size: int = 16,
        full_size_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        base, widths = stage_channels(image_size, width)
        self.base = base
        depths = [depth] * (len(widths) - 1) + [depth if full_size_blocks else 0]
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes else None
        inputs = z_dim * (2 if num_classes else 1)
        self.project = nn.Linear(inputs, widths[0] * base * base)
        _kaiming(self.project)
        self.stages, self.transitions = _stages(widths, depths, expansion, group_size)
        self.to_image = nn.Conv2d(widths[-1], channels, 1)
        _kaiming(self.to_image)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)
        h = F.leaky_relu(self.project(z), SLOPE).unflatten(1, (-1, self.base, self.base))
        for i, stage in enumerate(self.stages):
            if i:
                h = self.transitions[i - 1](h)
                h = F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
            h = stage(h)
        return torch.tanh(self.to_image(F.leaky_relu(h, SLOPE)))

    def layers(self) -> list[tuple[str, nn.Module]]:
        """The modules whose outputs are the successive representations (``ganforge
        inside``): the projection (flat), then each stage at its resolution."""
        return [("project", self.project)] + [
            (f"stage{i + 1}", s) for i, s in enumerate(self.stages) if len(s)
        ]


class ResNetDiscriminator(nn.Module):
    """Maps images (N, C, S, S) [and labels (N,)] to one logit per image, shape (N,)."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int = 32,
        num_classes: int = 0,
        depth: int = 1,
        expansion: int = 2,
        group_size: int = 16,
        full_size_blocks: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        base, widths = stage_channels(image_size, width)
        widths = widths[::-1]  # full size first
        depths = [depth if full_size_blocks else 0] + [depth] * (len(widths) - 1)
        self.from_image = nn.Conv2d(channels, widths[0], 1)
        _kaiming(self.from_image)
        self.stages, self.transitions = _stages(widths, depths, expansion, group_size)
        top = widths[-1]
        # One weight per channel and position: the base map becomes a feature vector.
        self.basis = nn.Conv2d(top, top, base, groups=top)
        _kaiming(self.basis)
        self.head = nn.Linear(top, 1)
        _kaiming(self.head)
        self.embed = nn.Embedding(num_classes, top) if num_classes else None

    def features(self, x: Tensor) -> Tensor:
        h = self.from_image(x)
        for i, stage in enumerate(self.stages):
            if i:
                h = F.avg_pool2d(self.transitions[i - 1](h), 2)
            h = stage(h)
        return F.leaky_relu(self.basis(F.leaky_relu(h, SLOPE)), SLOPE).flatten(1)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return projection_logit(self.features(x), self.head, self.embed, y)


def build(spec, z_dim: int, width: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    g = ResNetGenerator(z_dim, spec.channels, spec.image_size, width, num_classes)
    d = ResNetDiscriminator(spec.channels, spec.image_size, width, num_classes)
    return g, d
