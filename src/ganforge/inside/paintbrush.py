"""The paintbrush (GANPaint, Bau et al. 2019): switch units on or off inside a mask painted
on the image grid, and re-render. Everything outside what the edited cells reach through
the later layers is left exactly as it was."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.inside.units import Edit, check_layer, render, unit_levels
from ganforge.sampling import LoadedGenerator, noise


def paint(
    gen: LoadedGenerator,
    seed: int,
    layer: str,
    units: Sequence[int],
    mask: Tensor,
    mode: str = "insert",
    class_label: int | None = None,
    levels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The image of ``seed`` (1, C, H, W) before and after ``units`` of ``layer`` are
    inserted (set to their 99th-percentile level) or removed (set to 0) inside ``mask``
    (bool (H, W) on the image grid)."""
    check_layer(gen, layer)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    if not mask.any():
        raise GanforgeError("the brush mask is empty: paint at least one pixel")
    if mode == "insert" and levels is None:
        levels = unit_levels(gen, layer)
    z = noise(1, gen.z_dim, seed)
    labels = gen.labels(1, class_label, seed)
    before = render(gen, z, labels)
    after = render(gen, z, labels, [Edit(layer, list(units), mode, mask, levels)])
    return before, after


def box_mask(size: int, top: int, left: int, height: int, width: int) -> Tensor:
    """A rectangular brush mask (bool (size, size))."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top : top + height, left : left + width] = True
    return mask


def before_after_picture(before: Tensor, after: Tensor, mask: Tensor, scale: int = 6) -> np.ndarray:
    """before | mask outline over before | after, as one uint8 HWC picture."""
    from ganforge.data.images import to_uint8

    b, a = to_uint8(before)[0].numpy(), to_uint8(after)[0].numpy()
    b, a = (np.repeat(x, 3, 2) if x.shape[2] == 1 else x[..., :3] for x in (b, a))
    marked = b.astype(np.float32)
    m = mask.numpy()
    marked[m] = 0.5 * marked[m] + 0.5 * np.array([60.0, 140.0, 255.0])
    cells = [b, marked.round().astype(np.uint8), a]
    h, w = b.shape[:2]
    out = np.full((h * scale, (w * scale + 8) * 3 - 8, 3), 255, np.uint8)
    for i, c in enumerate(cells):
        big = c.repeat(scale, 0).repeat(scale, 1)
        out[:, i * (w * scale + 8) : i * (w * scale + 8) + w * scale] = big
    return out
