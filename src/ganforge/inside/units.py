"""Units of a generator layer, and editing them while the generator runs (GAN Dissection,
Bau et al. 2019): a unit is one channel of a feature-map layer.

An :class:`Edit` sets some units of one layer, inside a mask on the image grid (or
everywhere), either to zero ("remove": ablation; DCGAN's feature maps follow a ReLU, so
zero is "off"; a residual stage's output is a sum, where zero is only "quiet") or to a high
level of their own ("insert": each unit's 99th percentile over many samples, from
:func:`unit_levels`). :func:`edited` applies edits with
forward hooks, so any generator that names its layers can be edited without changes.
Masks are bool (H, W) on the image grid; a layer cell is edited when any image pixel it
covers is in the mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.inside.layers import capture, layer_modules
from ganforge.sampling import LoadedGenerator, noise

MODES = ("remove", "insert")


def layer_shapes(gen: LoadedGenerator) -> dict[str, tuple[int, int, int]]:
    """``(units, h, w)`` of each feature-map layer."""
    probe = capture(gen, noise(1, gen.z_dim, 0), gen.labels(1, None, 0))[0]
    return {name: tuple(h.shape[1:]) for name, h in probe.items() if h.dim() == 4}


def check_layer(gen: LoadedGenerator, layer: str) -> tuple[int, int, int]:
    """The shape of ``layer``, or a one-line error naming the layers there are."""
    shapes = layer_shapes(gen)
    if layer not in shapes:
        names = ", ".join(shapes) or "none"
        raise GanforgeError(
            f"layer {layer!r} is not a feature-map layer of this {gen.network} generator "
            f"(its feature-map layers: {names})"
        )
    return shapes[layer]


def check_units(units: Sequence[int], count: int, layer: str) -> list[int]:
    units = [int(u) for u in units]
    bad = [u for u in units if not 0 <= u < count]
    if bad:
        raise GanforgeError(f"layer {layer!r} has units 0..{count - 1}; there is no unit {bad[0]}")
    return units


@dataclass
class Edit:
    """Set ``units`` of ``layer`` inside ``mask`` (bool (H, W) image grid; None = everywhere)
    to zero (``mode="remove"``) or to ``levels`` (per unit, ``mode="insert"``)."""

    layer: str
    units: list[int]
    mode: str = "remove"
    mask: Tensor | None = None
    levels: Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise GanforgeError(f"an edit removes or inserts units, not {self.mode!r}")
        if self.mode == "insert" and self.levels is None:
            raise GanforgeError("inserting units needs their levels (unit_levels)")

    def apply(self, h: Tensor) -> Tensor:
        if not self.units:
            return h
        cells = _cells(self.mask, h.shape[2:], h.device)
        idx = torch.as_tensor(self.units, device=h.device)
        if self.mode == "remove":
            target = torch.zeros_like(h[:, idx])
        else:
            level = self.levels.to(h.device, h.dtype)[idx]
            target = level.view(1, -1, 1, 1).expand_as(h[:, idx])
        out = h.clone()
        out[:, idx] = torch.where(cells, target, h[:, idx])
        return out


def _cells(mask: Tensor | None, size: torch.Size, device: torch.device) -> Tensor:
    """The image-grid mask at a layer's resolution: a cell is in when any of its pixels is."""
    if mask is None:
        return torch.ones(1, 1, *size, dtype=torch.bool, device=device)
    m = mask.to(device=device, dtype=torch.float32)[None, None]
    return F.adaptive_max_pool2d(m, tuple(size)) > 0


@contextmanager
def edited(gen: LoadedGenerator, edits: Sequence[Edit]) -> Iterator[LoadedGenerator]:
    """Within the block, ``gen`` runs with ``edits`` applied (in order, per layer)."""
    modules = dict(layer_modules(gen))
    shapes = layer_shapes(gen) if edits else {}
    for e in edits:
        units, _, _ = shapes[e.layer] if e.layer in shapes else check_layer(gen, e.layer)
        check_units(e.units, units, e.layer)
        if e.mask is not None and tuple(e.mask.shape) != (gen.spec.image_size,) * 2:
            raise GanforgeError(
                f"a mask must be {gen.spec.image_size}x{gen.spec.image_size} (the image grid), "
                f"got {tuple(e.mask.shape)}"
            )

    def hook(layer_edits: list[Edit]):
        def run(_module, _inputs, out: Tensor) -> Tensor:
            for e in layer_edits:
                out = e.apply(out)
            return out

        return run

    by_layer: dict[str, list[Edit]] = {}
    for e in edits:
        by_layer.setdefault(e.layer, []).append(e)
    hooks = [modules[name].register_forward_hook(hook(es)) for name, es in by_layer.items()]
    try:
        yield gen
    finally:
        for h in hooks:
            h.remove()


def unit_levels(
    gen: LoadedGenerator, layer: str, n: int = 500, q: float = 0.99, seed: int = 54321
) -> Tensor:
    """Each unit's ``q`` quantile of activation over ``n`` samples and all places (units,)."""
    check_layer(gen, layer)
    z = noise(n, gen.z_dim, seed)
    h = capture(gen, z, gen.labels(n, None, seed))[0][layer]
    flat = h.transpose(0, 1).flatten(1)
    if flat.shape[1] > 2**24:  # torch.quantile's input limit
        flat = flat[:, torch.randperm(flat.shape[1], generator=torch.Generator().manual_seed(0))]
        flat = flat[:, : 2**24]
    return torch.quantile(flat, q, dim=1)


def render(
    gen: LoadedGenerator, z: Tensor, labels: Tensor | None = None, edits: Sequence[Edit] = ()
) -> Tensor:
    """Images (N, C, H, W) in [-1, 1] for latents ``z`` with ``edits`` applied."""
    with edited(gen, edits), torch.no_grad():
        return gen(z, labels)
