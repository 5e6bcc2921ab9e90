"""Looking inside a generator, layer by layer: what each layer already holds.

For a latent, every layer the generator names (its ``layers()``: DCGAN's projection and
upsampling stages, the 2014 MLP's hidden layers, the residual stages) is captured with a
forward hook, and shown two ways: its strongest channels' activation maps, and the image
*decoded* from it by a small linear probe (a 1x1 convolution then bilinear upsampling for
feature maps; one linear map for flat features) fitted by least squares on samples of the
generator itself, with its reconstruction error on held-out samples. The last row is the
image itself (the deepest "layer": decoded exactly). Images are float NCHW in [-1, 1];
pictures are uint8 HWC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.data.images import to_uint8
from ganforge.errors import GanforgeError
from ganforge.resources import require_image_memory
from ganforge.sampling import LoadedGenerator, noise

IMAGE = "image"


def layer_modules(gen: LoadedGenerator) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the generator's layers, shallow to deep."""
    layers = getattr(gen.generator, "layers", None)
    if layers is None:
        raise GanforgeError(f"network {gen.network!r} does not name its layers")
    return layers()


def capture(
    gen: LoadedGenerator, z: Tensor, labels: Tensor | None = None
) -> tuple[dict[str, Tensor], Tensor]:
    """Each layer's output (N, ...) for latents ``z``, and the images (N, C, H, W)."""
    layers = layer_modules(gen)
    seen: dict[str, list[Tensor]] = {name: [] for name, _ in layers}

    def keep(name: str):  # the generator may run in chunks: keep every chunk's output
        return lambda _module, _inputs, out: seen[name].append(out.clone())

    hooks = [module.register_forward_hook(keep(name)) for name, module in layers]
    try:
        with torch.no_grad():
            images = gen(z.to(gen.device), labels)
    finally:
        for hook in hooks:
            hook.remove()
    # Cloned here, outside the generator's inference mode, so probes can learn from them.
    features = {name: torch.cat(seen[name]).float().cpu().clone() for name in seen}
    return features, images.float().cpu().clone()


class Probe(nn.Module):
    """A linear decoder from one layer's features to the image."""

    def __init__(self, features: tuple[int, ...], image: tuple[int, int, int]) -> None:
        super().__init__()
        self.image = image
        if len(features) == 3:  # (C, h, w) maps
            self.map = nn.Conv2d(features[0], image[0], 1)
        else:
            self.map = nn.Linear(int(np.prod(features)), int(np.prod(image)))

    def forward(self, h: Tensor) -> Tensor:
        if isinstance(self.map, nn.Conv2d):
            out = self.map(h)
            return F.interpolate(out, size=self.image[1:], mode="bilinear", align_corners=False)
        return self.map(h.flatten(1)).view(-1, *self.image)


@dataclass
class Probes:
    """One fitted probe per layer and its held-out mean squared error (images in [-1, 1])."""

    probes: dict[str, Probe]
    errors: dict[str, float]
    shapes: dict[str, list[int]] = field(default_factory=dict)

    def decode(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        with torch.no_grad():
            return {name: self.probes[name](h).clamp(-1, 1) for name, h in features.items()}

    def report(self) -> list[dict[str, Any]]:
        return [{"layer": n, "shape": self.shapes[n], "probe_mse": self.errors[n]}
                for n in self.probes]  # fmt: skip


def fit_probes(gen: LoadedGenerator, n: int = 2000, steps: int = 300, seed: int = 12345) -> Probes:
    """Fit each layer's probe on ``n`` samples (the last fifth held out for the error)."""
    if n < 10 or steps < 1:
        raise GanforgeError("probes need at least 10 samples and 1 step")
    spec = gen.spec
    require_image_memory(n, spec.channels, spec.image_size, gen.z_dim, f"{n:,} probe samples")
    z = noise(n, gen.z_dim, seed)
    labels = gen.labels(n, None, seed)
    features, images = capture(gen, z, labels)
    fit, held = slice(0, n - n // 5), slice(n - n // 5, n)
    probes, errors, shapes = {}, {}, {}
    torch.manual_seed(seed)
    for name, h in features.items():
        probe = Probe(tuple(h.shape[1:]), tuple(images.shape[1:]))
        opt = torch.optim.Adam(probe.parameters(), lr=1e-2)
        for _ in range(steps):  # full batch: the data is small and fixed
            loss = F.mse_loss(probe(h[fit]), images[fit])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            errors[name] = float(F.mse_loss(probe(h[held]).clamp(-1, 1), images[held]))
        probes[name], shapes[name] = probe.eval(), list(h.shape[1:])
    return Probes(probes, errors, shapes)


def _to_pixels(x: Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> uint8 (H, W, 3)."""
    hwc = to_uint8(x[None])[0]
    return (hwc.expand(-1, -1, 3) if hwc.shape[2] == 1 else hwc[..., :3]).numpy()


def _map_pixels(m: Tensor, size: tuple[int, int]) -> np.ndarray:
    """One activation map, scaled to [0, 255] on its own range, at ``size`` (nearest)."""
    m = m - m.min()
    m = m / m.max().clamp_min(1e-8)
    up = F.interpolate(m[None, None], size=size, mode="nearest")[0, 0]
    return np.repeat(up.mul(255).round().byte().numpy()[..., None], 3, axis=2)


def layer_strip(
    gen: LoadedGenerator, seed: int, probes: Probes, maps: int = 6, class_label: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """One picture (uint8 HWC) for the latent of ``seed``: a row per layer, shallow to deep,
    with the decoded render first and then the ``maps`` most active channels' maps; the
    last row is the image. Returns it and the row names."""
    z = noise(1, gen.z_dim, seed)
    features, image = capture(gen, z, gen.labels(1, class_label, seed))
    return strip_of(features, image, probes, maps)


def strip_of(
    features: dict[str, Tensor], image: Tensor, probes: Probes, maps: int = 6
) -> tuple[np.ndarray, list[str]]:
    """:func:`layer_strip` for one image's captured ``features`` and the ``image`` itself."""
    decoded = probes.decode(features)
    size = tuple(image.shape[2:])
    rows, names = [], []
    blank = np.full((*size, 3), 255, np.uint8)
    for name, h in features.items():
        cells = [_to_pixels(decoded[name][0])]
        if h.dim() == 4:
            strongest = h[0].flatten(1).mean(1).argsort(descending=True)[:maps]
            cells += [_map_pixels(h[0, c], size) for c in strongest.tolist()]
        rows.append(cells)
        names.append(name)
    rows.append([_to_pixels(image[0])])
    names.append(IMAGE)
    pad = 2
    width = 1 + maps
    out = np.full(((size[0] + pad) * len(rows), (size[1] + pad) * width, 3), 255, np.uint8)
    for r, cells in enumerate(rows):
        for c in range(width):
            cell = cells[c] if c < len(cells) else blank
            y, x = r * (size[0] + pad), c * (size[1] + pad)
            out[y : y + size[0], x : x + size[1]] = cell
    return out, names


def labelled(picture: np.ndarray, names: list[str], scale: int = 3) -> np.ndarray:
    """The strip ``scale`` times larger (nearest), with each row's layer name at its left."""
    from PIL import Image, ImageDraw

    big = picture.repeat(scale, axis=0).repeat(scale, axis=1)
    margin = 8 + 7 * max(len(n) for n in names)
    canvas = Image.new("RGB", (big.shape[1] + margin, big.shape[0]), "white")
    canvas.paste(Image.fromarray(big), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row = big.shape[0] / len(names)
    for i, name in enumerate(names):
        draw.text((4, int(row * i + row / 2 - 5)), name, fill="black")
    return np.asarray(canvas)
