"""Concepts that can be computed on digit images, as masks on the image grid.

Images are float (N, C, H, W) in [-1, 1]; every concept is a bool (N, H, W) mask:

- ``stroke``: the ink (gray value above the middle).
- ``top``, ``middle``, ``bottom``: the stroke in each third of the digit's own height;
  ``left``, ``right``: in each half of its width.
- ``hole``: background enclosed by ink (the inside of a loop); ``loop``: the ink within
  two pixels of a hole.
- ``stem``: ink in a vertical run at least a quarter of the image high; ``bar``: in a
  horizontal run as long; ``top bar``: a bar in the top third.
- ``class 0`` ... ``class 9``: the stroke of the images the reference MNIST network reads as
  that class (only for 1 x 28 x 28 images, the reference's input).
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

PARTS = ("stroke", "top", "middle", "bottom", "left", "right", "hole", "loop", "stem", "bar",
         "top bar")  # fmt: skip


def stroke(images: Tensor) -> Tensor:
    return images.float().mean(1) > 0


def _extent(ink: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """First and last index with ink along ``dim`` (1 = rows, 2 = columns), per image."""
    any_ink = ink.any(dim=3 - dim)  # (N, L)
    size = any_ink.shape[1]
    first = any_ink.float().argmax(1)
    last = size - 1 - any_ink.flip(1).float().argmax(1)
    return first, last


def _relative(ink: Tensor, dim: int) -> Tensor:
    """Each pixel's position along ``dim`` within the ink's extent, in [0, 1) (N, H, W)."""
    first, last = _extent(ink, dim)
    size = ink.shape[dim]
    pos = torch.arange(size, device=ink.device).float()
    rel = (pos[None] - first[:, None]) / (last - first + 1).clamp_min(1)[:, None]
    return rel[:, :, None] if dim == 1 else rel[:, None, :]


def _holes(ink: Tensor) -> Tensor:
    """Background not 4-connected to the border: flood the outside from the border."""
    background = ~ink[:, None]
    outside = torch.zeros_like(background)
    outside[..., 0, :], outside[..., -1, :] = background[..., 0, :], background[..., -1, :]
    outside[..., :, 0], outside[..., :, -1] = background[..., :, 0], background[..., :, -1]
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float32, device=ink.device)
    cross = cross[None, None]
    while True:
        grown = (F.conv2d(outside.float(), cross, padding=1) > 0) & background
        if torch.equal(grown, outside):
            return (background & ~outside)[:, 0]
        outside = grown


def _runs(ink: Tensor, length: int, dim: int) -> Tensor:
    """Ink that belongs to a straight run of at least ``length`` pixels along ``dim``."""
    x = ink[:, None].float()
    shape = (1, 1, length, 1) if dim == 1 else (1, 1, 1, length)
    kernel = torch.ones(shape, device=ink.device)
    starts = F.conv2d(x, kernel) >= length  # a full run begins here
    pad = (0, 0, length - 1, length - 1) if dim == 1 else (length - 1, length - 1, 0, 0)
    covered = F.conv2d(F.pad(starts.float(), pad), kernel) > 0
    return covered[:, 0] & ink


def digit_concepts(images: Tensor, classes: Tensor | None = None) -> dict[str, Tensor]:
    """The masks above for ``images``; ``classes`` (N,) adds ``class c`` for each c in 0..9."""
    ink = stroke(images)
    rows, cols = _relative(ink, 1), _relative(ink, 2)
    length = max(2, round(ink.shape[1] / 4))
    holes = _holes(ink)
    near_hole = F.max_pool2d(holes[:, None].float(), 5, 1, 2)[:, 0] > 0
    bar = _runs(ink, length, 2)
    top = ink & (rows < 1 / 3)
    out = {
        "stroke": ink,
        "top": top,
        "middle": ink & (rows >= 1 / 3) & (rows < 2 / 3),
        "bottom": ink & (rows >= 2 / 3),
        "left": ink & (cols < 1 / 2),
        "right": ink & (cols >= 1 / 2),
        "hole": holes,
        "loop": ink & near_hole,
        "stem": _runs(ink, length, 1),
        "bar": bar,
        "top bar": bar & top,
    }
    if classes is not None:
        for c in range(10):
            out[f"class {c}"] = ink & (classes == c)[:, None, None]
    return out


@lru_cache(maxsize=1)
def _reference() -> torch.nn.Module:
    """The reference network, read and checked once (dreams ask for it every frame)."""
    from ganforge.metrics.reference import load_reference

    return load_reference()


def reads_as(images: Tensor, batch: int = 1000) -> Tensor | None:
    """The reference network's class for each image (N,), or None when the images are not
    the reference's 1 x 28 x 28 digits."""
    if tuple(images.shape[1:]) != (1, 28, 28):
        return None
    net = _reference()
    with torch.no_grad():
        return torch.cat(
            [net(images[i : i + batch].float()).argmax(1) for i in range(0, len(images), batch)]
        )


def class_probabilities(images: Tensor, batch: int = 1000) -> Tensor:
    """The reference network's class probabilities (N, 10) for 1 x 28 x 28 digits."""
    net = _reference()
    with torch.no_grad():
        return torch.cat(
            [net(images[i : i + batch].float()).softmax(1) for i in range(0, len(images), batch)]
        )
