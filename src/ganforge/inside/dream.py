"""Dreaming through the critic: hold the networks fixed and change the input until a
chosen unit fires harder or the critic finds the image more real ("whatever you see there,
we need more of it").

Two spaces: the latent (the generator's own images, so the result stays one the generator
can draw) or the image's pixels directly (kept in [-1, 1]). The steps are recorded with
the critic's logit and, for 1 x 28 x 28 digits, what the reference MNIST network reads: the
gap between what the critic likes and what a classifier recognises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.inside.concepts import class_probabilities
from ganforge.inside.units import check_layer, check_units
from ganforge.sampling import LoadedGenerator, noise

SPACES = ("latent", "image")
MAX_STEPS = 100_000  # minutes on a CPU; beyond, a typo rather than a wish
MAX_FRAMES = 50


@dataclass
class Dream:
    target: str
    space: str
    steps: list[int] = field(default_factory=list)
    images: list[Tensor] = field(default_factory=list)  # (C, H, W) in [-1, 1] per frame
    objective: list[float] = field(default_factory=list)
    critic: list[float] = field(default_factory=list)
    reads: list[tuple[int, float]] = field(default_factory=list)  # reference class, its P

    def report(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "space": self.space,
            "frames": [
                {"step": s, "objective": round(o, 4), "critic_logit": round(c, 4),
                 **({"reads_as": r[0], "p": round(r[1], 4)} if r else {})}
                for s, o, c, r in zip(
                    self.steps, self.objective, self.critic,
                    self.reads or [None] * len(self.steps), strict=True,
                )
            ],
        }  # fmt: skip


def _unit_hook(gen: LoadedGenerator, layer: str, unit: int, seen: list[Tensor]):
    module = dict(gen.generator.layers())[layer]
    return module.register_forward_hook(lambda _m, _i, out: seen.append(out[:, unit]))


def dream(
    gen: LoadedGenerator,
    critic: nn.Module,
    seed: int = 0,
    target: str = "critic",
    space: str = "latent",
    steps: int = 60,
    lr: float | None = None,
    frames: int = 7,
    class_label: int | None = None,
) -> Dream:
    """Raise ``target`` (``critic``: the critic's logit; ``LAYER:UNIT``: that unit's mean
    activation) from the sample of ``seed`` by ``steps`` Adam steps in ``space``."""
    if space not in SPACES:
        raise GanforgeError(f"dream in the latent or the image, not {space!r}")
    if not 1 <= steps <= MAX_STEPS or not 2 <= frames <= MAX_FRAMES:
        raise GanforgeError(
            f"a dream takes 1..{MAX_STEPS:,} steps and 2..{MAX_FRAMES} frames, "
            f"got {steps} and {frames}"
        )
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise GanforgeError(f"the step size must be a positive number, got {lr}")
    unit = None
    if target != "critic":
        layer, _, u = target.partition(":")
        try:
            index = int(u)
        except ValueError:
            raise GanforgeError(
                f"a dream target is 'critic' or LAYER:UNIT, got {target!r}"
            ) from None
        count = check_layer(gen, layer)[0]
        unit = (layer, check_units([index], count, layer)[0])
        if space == "image":
            raise GanforgeError("a generator unit can only be dreamed through the latent")
    lr = lr if lr is not None else (0.05 if space == "latent" else 0.01)
    labels = gen.labels(1, class_label, seed)
    z = noise(1, gen.z_dim, seed).to(gen.device)
    digits = (gen.spec.channels, gen.spec.image_size) == (1, 28)
    with torch.no_grad():
        start = gen.generator(z, labels)
    x = (z if space == "latent" else start).clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    keep = set(np.linspace(0, steps, frames).round().astype(int).tolist())
    result = Dream(target, space)
    seen: list[Tensor] = []
    hook = _unit_hook(gen, *unit, seen) if unit else None
    try:
        for step in range(steps + 1):
            seen.clear()
            image = gen.generator(x, labels) if space == "latent" else x
            logit = critic(image, labels).sum()
            objective = seen[0].mean() if unit else logit
            if step in keep:
                result.steps.append(step)
                result.images.append(image.detach()[0].float().cpu().clone())
                result.objective.append(float(objective.detach()))
                result.critic.append(float(logit.detach()))
                if digits:
                    p = class_probabilities(image.detach().float().cpu())[0]
                    result.reads.append((int(p.argmax()), float(p.max())))
            if step == steps:
                break
            (grad,) = torch.autograd.grad(objective, x)
            x.grad = -grad  # ascent
            opt.step()
            if space == "image":
                with torch.no_grad():
                    x.clamp_(-1, 1)
    finally:
        if hook is not None:
            hook.remove()
    return result


def dream_picture(result: Dream, scale: int = 4) -> np.ndarray:
    """The frames left to right, each captioned with its step, objective, the critic's
    logit and what the reference network reads (uint8 HWC)."""
    from PIL import Image, ImageDraw

    from ganforge.data.images import to_uint8

    tiles = [to_uint8(im[None])[0].numpy() for im in result.images]
    tiles = [np.repeat(t, 3, 2) if t.shape[2] == 1 else t[..., :3] for t in tiles]
    h, w = tiles[0].shape[:2]
    cw = max(w * scale, 96)
    caption = 46
    canvas = Image.new("RGB", (len(tiles) * (cw + 6), 16 + h * scale + caption), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), f"dream through the {result.space}: raise {result.target}", fill="black")
    for i, t in enumerate(tiles):
        x0 = i * (cw + 6)
        big = Image.fromarray(t).resize((w * scale, h * scale), Image.NEAREST)
        canvas.paste(big, (x0, 16))
        lines = [f"step {result.steps[i]}", f"critic {result.critic[i]:+.2f}"]
        if result.target != "critic":
            lines.append(f"unit {result.objective[i]:.2f}")
        if result.reads:
            c, p = result.reads[i]
            lines.append(f"reads {c} ({p:.2f})")
        draw.text((x0, 18 + h * scale), "\n".join(lines), fill="black")
    return np.asarray(canvas)
