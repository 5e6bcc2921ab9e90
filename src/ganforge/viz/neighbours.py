"""Samples beside their nearest training images, the 2014 paper's Figure 2 check that a
generator did not simply memorize its data."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ganforge.data.images import to_uint8
from ganforge.errors import GanforgeError
from ganforge.viz.grid import save_image

FRAME = (255, 200, 0)  # the paper outlines its nearest-neighbour column in yellow


def neighbour_grid(
    samples: Tensor, neighbours: Tensor, pairs_per_row: int = 5, gap: int = 2, frame: int = 1
) -> Tensor:
    """A uint8 HWC RGB picture of (sample, nearest training image) pairs, the training image
    framed in yellow. ``samples`` and ``neighbours`` are float NCHW in [-1, 1], same shape."""
    if samples.shape != neighbours.shape or samples.dim() != 4:
        raise GanforgeError(
            f"samples {tuple(samples.shape)} and neighbours {tuple(neighbours.shape)} "
            "must be NCHW of the same shape"
        )
    if pairs_per_row < 1:
        raise GanforgeError(f"pairs_per_row must be at least 1, got {pairs_per_row}")
    n, c, h, w = samples.shape
    s, nb = to_uint8(samples), to_uint8(neighbours)  # NHWC
    if c == 1:
        s, nb = s.expand(-1, -1, -1, 3), nb.expand(-1, -1, -1, 3)
    rows = -(-n // pairs_per_row)
    cell_h, cell_w = h + 2 * frame, w + 2 * frame
    pair_w = 2 * cell_w + gap
    out = torch.full(
        (gap + rows * (cell_h + gap), gap + pairs_per_row * (pair_w + 2 * gap), 3),
        255,
        dtype=torch.uint8,
    )
    yellow = torch.tensor(FRAME, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, pairs_per_row)
        y = gap + r * (cell_h + gap)
        x = gap + k * (pair_w + 2 * gap)
        out[y + frame : y + frame + h, x + frame : x + frame + w] = s[i]
        x2 = x + cell_w + gap
        out[y : y + cell_h, x2 : x2 + cell_w] = yellow
        out[y + frame : y + frame + h, x2 + frame : x2 + frame + w] = nb[i]
    return out


def save_neighbour_grid(
    samples: Tensor,
    neighbours: Tensor,
    path: str | Path,
    pairs_per_row: int = 5,
    upscale: int = 2,
) -> None:
    save_image(neighbour_grid(samples, neighbours, pairs_per_row), path, upscale)
