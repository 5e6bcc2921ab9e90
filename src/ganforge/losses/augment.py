"""Differentiable augmentation (DiffAugment, Zhao et al., 2020): the same random transforms
on real and generated images before the discriminator sees them, differentiable so that the
generator learns through them. It keeps a discriminator from memorizing a small dataset.

Policies (comma-separated): ``translation`` (shift by up to 1/8 of the size, zeros fill),
``cutout`` (zero a random square of half the size), ``color`` (random brightness,
saturation and contrast). Images are float NCHW in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.errors import GanforgeError


def color(x: Tensor) -> Tensor:
    n = len(x)
    shape = (n, 1, 1, 1)
    x = x + (torch.rand(shape, device=x.device, dtype=x.dtype) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(shape, device=x.device, dtype=x.dtype) + 0.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # (n, h, w)
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(n, 1, h * w)
    moved = x.reshape(n, c, h * w).gather(2, index.expand(n, c, h * w)).view(n, c, h, w)
    return moved * inside.unsqueeze(1).to(x.dtype)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(ch // 2), h - ch // 2 + 1, (n, 1, 1), device=x.device)
    left = torch.randint(-(cw // 2), w - cw // 2 + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cut = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x * (~cut).unsqueeze(1).to(x.dtype)


POLICIES = {"color": color, "translation": translation, "cutout": cutout}


class DiffAugment:
    """``DiffAugment("translation,cutout")(images)``; an empty policy returns images as given."""

    def __init__(self, policy: str = "") -> None:
        names = [p.strip() for p in policy.split(",") if p.strip()]
        unknown = [p for p in names if p not in POLICIES]
        if unknown:
            raise GanforgeError(
                f"unknown augmentation {unknown[0]!r}; choose from: {', '.join(POLICIES)}"
            )
        self.policy = names

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: Tensor) -> Tensor:
        for name in self.policy:
            x = POLICIES[name](x)
        return x
