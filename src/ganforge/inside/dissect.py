"""Unit dissection (Bau et al., 2019) for digit generators: which units of a layer draw which
concept, and whether switching them off removes it.

Agreement: each unit's activation map, upsampled (bilinear) to the image grid, is
thresholded at the unit's own ``quantile`` over samples and places; its IoU with each
concept mask of :mod:`.concepts` is summed over all samples. Cause: the ``k`` units with
the highest IoU for a concept are set to zero everywhere on fresh samples, and the effect
is measured; the same is done for ``random_draws`` sets of ``k`` random units. For a stroke
concept the effect is the share of the concept's ink that is gone (gray value no longer
above the middle); for ``class c`` it is the mean drop in the reference network's
probability of ``c`` on the samples it read as ``c``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.errors import GanforgeError
from ganforge.inside.concepts import class_probabilities, digit_concepts, reads_as, stroke
from ganforge.inside.layers import capture
from ganforge.inside.units import Edit, check_layer, render
from ganforge.resources import require_memory
from ganforge.sampling import LoadedGenerator, noise


@dataclass
class Dissection:
    layer: str
    iou: Tensor  # (units, concepts)
    concepts: list[str]
    thresholds: Tensor  # (units,)
    ablation: list[dict[str, Any]]
    samples: int
    quantile: float
    features: Tensor | None = None  # the layer's activations over the samples, for pictures
    images: Tensor | None = None

    def ranked(self) -> list[dict[str, Any]]:
        """Units by their best IoU, highest first, each with its best concept."""
        best, which = self.iou.max(1)
        order = best.argsort(descending=True).tolist()
        return [
            {"unit": u, "concept": self.concepts[int(which[u])], "iou": round(float(best[u]), 4)}
            for u in order
        ]

    def top_units(self, concept: str, k: int) -> list[int]:
        column = self.iou[:, self.concepts.index(concept)]
        return column.argsort(descending=True)[:k].tolist()

    def report(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "units": int(self.iou.shape[0]),
            "samples": self.samples,
            "quantile": self.quantile,
            "concepts": self.concepts,
            "ranked": self.ranked(),
            "best_per_concept": {
                c: {"unit": u, "iou": round(float(self.iou[u, i]), 4)}
                for i, c in enumerate(self.concepts)
                for u in [int(self.iou[:, i].argmax())]
            },
            "ablation": self.ablation,
        }


def _upsampled(h: Tensor, size: tuple[int, int]) -> Tensor:
    return F.interpolate(h, size=size, mode="bilinear", align_corners=False)


def unit_thresholds(h: Tensor, size: tuple[int, int], quantile: float, n: int = 500) -> Tensor:
    """Each unit's ``quantile`` of its upsampled activation over the first ``n`` samples."""
    up = _upsampled(h[:n], size).transpose(0, 1).flatten(1)
    return (
        torch.quantile(up, quantile, dim=1)
        if up.shape[1] <= 2**24
        else up.kthvalue(max(1, int(quantile * up.shape[1])), dim=1).values
    )


def agreement(
    h: Tensor, concepts: dict[str, Tensor], thresholds: Tensor, chunk: int = 100
) -> Tensor:
    """IoU (units, concepts) of thresholded upsampled activations with the concept masks."""
    size = next(iter(concepts.values())).shape[1:]
    masks = torch.stack(list(concepts.values()), 1)  # (N, K, H, W)
    inter = torch.zeros(h.shape[1], masks.shape[1], dtype=torch.float64)
    unit_area = torch.zeros(h.shape[1], dtype=torch.float64)
    for i in range(0, len(h), chunk):
        on = (_upsampled(h[i : i + chunk], tuple(size)) > thresholds.view(1, -1, 1, 1)).float()
        m = masks[i : i + chunk].float()
        inter += torch.einsum("nuhw,nkhw->uk", on, m).double()
        unit_area += on.sum((0, 2, 3)).double()
    concept_area = masks.sum((0, 2, 3)).double()
    union = unit_area[:, None] + concept_area[None] - inter
    return (inter / union.clamp_min(1)).float()


def _rounded(values: list[float], how=np.mean) -> float | None:
    """``how`` of the finite values (a class no sample was read as has none), or None."""
    finite = [v for v in values if np.isfinite(v)]
    return round(float(how(finite)), 4) if finite else None


_MEASURES = {"class": "mean drop in P(class) on samples read as the class",
             "hole": "share of the hole area no longer enclosed"}  # fmt: skip


def _effect(gen: LoadedGenerator, z, labels, layer, units, concept, before, masks, probs) -> float:
    after = render(gen, z, labels, [Edit(layer, units, "remove")])
    if concept.startswith("class "):
        c = int(concept.split()[1])
        readers = probs.argmax(1) == c
        if not readers.any():
            return float("nan")
        drop = probs[readers, c] - class_probabilities(after[readers])[:, c]
        return float(drop.mean())
    area = masks[concept]
    if concept == "hole":  # background: the hole is gone when it is no longer enclosed
        gone = area & ~digit_concepts(after)["hole"]
    else:
        gone = area & ~stroke(after)
    return float(gone.sum() / area.sum().clamp_min(1))


def dissect(
    gen: LoadedGenerator,
    layer: str,
    samples: int = 2000,
    quantile: float = 0.95,
    k: int = 4,
    random_draws: int = 10,
    ablation_samples: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> Dissection:
    """Dissect ``layer`` of ``gen`` over ``samples`` samples (see the module's text)."""
    units, h_, w_ = check_layer(gen, layer)
    if samples < 10 or ablation_samples < 1:
        raise GanforgeError("dissection needs at least 10 samples and 1 ablation sample")
    if not 0 < quantile < 1:
        raise GanforgeError(f"the activation quantile must be in (0, 1), got {quantile}")
    if not 1 <= k <= units:
        raise GanforgeError(f"k must be between 1 and the layer's {units} units, got {k}")
    if random_draws < 1:
        raise GanforgeError(f"random draws must be at least 1, got {random_draws}")
    size = gen.spec.image_size
    one = capture(gen, noise(1, gen.z_dim, 0), gen.labels(1, None, 0))[0]
    held = sum(h.numel() for h in one.values())  # capture keeps every layer
    per_sample = 4 * (held + 16 * size * size + gen.z_dim)
    require_memory(per_sample * max(samples, ablation_samples), f"dissecting {samples:,} samples")
    z = noise(samples, gen.z_dim, seed)
    features, images = capture(gen, z, gen.labels(samples, None, seed))
    h = features[layer]
    concepts = digit_concepts(images, reads_as(images))
    thresholds = unit_thresholds(h, (size, size), quantile)
    iou = agreement(h, concepts, thresholds)
    names = list(concepts)
    result = Dissection(layer, iou, names, thresholds, [], samples, quantile, h, images)

    # Cause: fresh samples, the concept's top-k units against random sets of k.
    za = noise(ablation_samples, gen.z_dim, seed + 1)
    la = gen.labels(ablation_samples, None, seed + 1)
    before = render(gen, za, la)
    masks = digit_concepts(before, reads_as(before))
    probs = class_probabilities(before) if tuple(before.shape[1:]) == (1, 28, 28) else None
    rng = np.random.default_rng(seed)
    from tqdm import tqdm

    for concept in tqdm(names, desc="ablating", unit="concept", disable=not progress):
        top = result.top_units(concept, k)
        args = (za, la, layer)
        effect = _effect(gen, *args, top, concept, before, masks, probs)
        rand = [
            _effect(
                gen,
                *args,
                sorted(rng.choice(units, k, replace=False).tolist()),
                concept,
                before,
                masks,
                probs,
            )  # fmt: skip
            for _ in range(random_draws)
        ]
        result.ablation.append(
            {
                "concept": concept,
                "k": k,
                "units": top,
                "iou": [round(float(iou[u, names.index(concept)]), 4) for u in top],
                "effect_top_k": _rounded([effect]),
                "effect_random_mean": _rounded(rand),
                "effect_random_sd": _rounded(rand, np.std),
                "measure": _MEASURES.get(concept.split()[0], "share of the concept's ink removed"),
            }
        )  # fmt: skip
    return result


def ablation_table(report: dict[str, Any]) -> str:
    """The report's per-concept lines as text: best unit, its IoU, the effect of its k best
    units off and of k random units off ("n/a" where no sample was read as the class)."""

    def num(x: float | None, width: int = 0) -> str:
        return f"{x:>{width}.3f}" if x is not None else f"{'n/a':>{width}}"

    k = report["ablation"][0]["k"] if report["ablation"] else 0
    lines = [f"{'concept':>9s}  best unit  IoU    top-{k} off  random {k} off"]
    for row in report["ablation"]:
        best = report["best_per_concept"][row["concept"]]
        lines.append(
            f"{row['concept']:>9s}  {best['unit']:>9d}  {best['iou']:.3f}  "
            f"{num(row['effect_top_k'], 10)}  {num(row['effect_random_mean'])} "
            f"± {num(row['effect_random_sd'])}"
        )
    return "\n".join(lines)


def dissection_picture(result: Dissection, top: int = 12, examples: int = 6) -> np.ndarray:
    """The ``top`` units by IoU, a row each: its name, concept and IoU, then the
    ``examples`` samples where it is most active with its thresholded region in red
    (uint8 HWC)."""
    from PIL import Image, ImageDraw

    h, images = result.features, result.images
    size = tuple(images.shape[2:])
    scale, pad = 3, 4
    rows = result.ranked()[:top]
    cell = size[0] * scale
    label = 190
    canvas = Image.new(
        "RGB", (label + examples * (cell + pad), len(rows) * (cell + pad) + 18), "white"
    )
    draw = ImageDraw.Draw(canvas)
    share = 100 * (1 - result.quantile)
    title = f"layer {result.layer}: top units by IoU (red: top {share:.0f}% of its activation)"
    draw.text((4, 2), title, fill="black")
    gray = images.float().mean(1).add(1).mul(127.5).clamp(0, 255)
    for r, row in enumerate(rows):
        u = row["unit"]
        strongest = h[:, u].flatten(1).amax(1).argsort(descending=True)[:examples]
        up = _upsampled(h[strongest, u : u + 1], size)[:, 0] > result.thresholds[u]
        y = 18 + r * (cell + pad)
        draw.text((4, y + cell // 2 - 12), f"unit {u}", fill="black")
        draw.text((4, y + cell // 2 + 2), f"{row['concept']}  IoU {row['iou']:.2f}", fill="black")
        for j, i in enumerate(strongest.tolist()):
            g = gray[i].numpy()
            rgb = np.stack([g, g, g], -1)
            region = up[j].numpy()
            rgb[region] = 0.45 * rgb[region] + 0.55 * np.array([230.0, 40.0, 40.0])
            tile = Image.fromarray(rgb.round().astype(np.uint8)).resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (label + j * (cell + pad), y))
    return np.asarray(canvas)


def ablation_plot(result: Dissection) -> bytes:
    """A PNG of bars: the effect of removing each concept's top-k units against k random
    units."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.ablation
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rows)), 3.6))

    def values(key: str) -> list[float]:  # None (no sample read as the class) -> no bar
        return [np.nan if r[key] is None else r[key] for r in rows]

    ax.bar(x - 0.2, values("effect_top_k"), 0.4, label="top-k units by IoU")
    ax.bar(x + 0.2, values("effect_random_mean"), 0.4, yerr=values("effect_random_sd"),
           label="k random units")  # fmt: skip
    ax.set_xticks(x, [r["concept"] for r in rows], rotation=60, ha="right")
    k = rows[0]["k"] if rows else 0
    ax.set_ylabel("ink removed / P(class) drop")
    ax.set_title(f"layer {result.layer}: switching off k={k} units")
    ax.legend(frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
