"""Looking inside a trained generator (Bau et al.'s GAN Dissection, for the project's own
small GANs). So far: what each layer holds (:mod:`.layers`)."""

from __future__ import annotations

import json
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.inside.layers import (
    Probes,
    capture,
    fit_probes,
    labelled,
    layer_modules,
    layer_strip,
)

__all__ = ["Probes", "capture", "fit_probes", "layer_modules", "layer_strip", "render_layers"]


def render_layers(
    run: str | Path,
    out: str | Path,
    seeds: list[int],
    maps: int = 6,
    samples: int = 2000,
    steps: int = 300,
    class_label: int | None = None,
    device: str = "cpu",
) -> dict:
    """Write ``layers_seed<S>.png`` for each seed and ``layers.json`` (each layer's shape
    and probe error) into the new folder ``out``; returns the JSON's content."""
    from PIL import Image

    from ganforge.io.atomic import atomic_save, atomic_write_bytes
    from ganforge.sampling import check_seed, load_generator

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanforgeError(f"{out} already exists and is not an empty folder; choose another")
    if not seeds or maps < 0:
        raise GanforgeError("give at least one seed, and a number of maps >= 0")
    for seed in seeds:
        check_seed(seed)
    gen = load_generator(run, device)
    if class_label is not None:
        gen.labels(1, class_label)  # refuses a class out of range before the work
    probes = fit_probes(gen, samples, steps)
    report = {"run": str(run), "network": gen.network, "step": gen.step,
              "layers": probes.report(), "seeds": seeds}  # fmt: skip
    for seed in seeds:
        picture, names = layer_strip(gen, seed, probes, maps, class_label)
        picture = labelled(picture, names)
        atomic_save(
            out / f"layers_seed{seed}.png",
            lambda p, x=picture: Image.fromarray(x).save(p, format="PNG"),
        )
    atomic_write_bytes(out / "layers.json", (json.dumps(report, indent=2) + "\n").encode())
    return report
