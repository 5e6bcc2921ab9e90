"""Looking inside a trained generator (Bau et al.'s GAN Dissection and GANPaint, for the
project's own small GANs): what each layer holds (:mod:`.layers`), which units draw what
(:mod:`.dissect`), the paintbrush (:mod:`.paintbrush`), dreaming through the critic
(:mod:`.dream`), latent directions (:mod:`.directions`) and the web explorer
(:mod:`.explorer`). The functions here write a command's pictures and JSON into a new
folder."""

from __future__ import annotations

from pathlib import Path

from ganforge.data.images import png_bytes
from ganforge.errors import GanforgeError
from ganforge.inside.layers import (
    Probes,
    capture,
    fit_probes,
    labelled,
    layer_modules,
    layer_strip,
)
from ganforge.io.atomic import json_bytes

__all__ = [
    "Probes", "capture", "dissect_run", "dream_run", "fit_probes", "layer_modules",
    "layer_strip", "render_layers",
]  # fmt: skip


def _new_folder(out: str | Path) -> Path:
    """``out`` if it can become the command's new folder: absent or empty, with a place
    to write it (checked before the work, so a bad path fails at once)."""
    import tempfile

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GanforgeError(f"{out} already exists and is not an empty folder; choose another")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent)).rmdir()
    except OSError as err:
        raise GanforgeError(f"cannot write {out}: {err.strerror or err}") from None
    return out


def _write(out: Path, files: dict[str, bytes]) -> None:
    """All of ``files`` into the new folder ``out`` at once: it appears whole or not at all."""
    from ganforge.viz.grid import write_folder

    if out.is_dir():
        out.rmdir()  # empty (checked); write_folder renames the finished folder into place
    names = list(files)
    write_folder(out, len(names), lambda i: (names[i], files[names[i]]))


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
    from ganforge.sampling import check_seed, load_generator

    out = _new_folder(out)
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
    files = {}
    for seed in seeds:
        picture, names = layer_strip(gen, seed, probes, maps, class_label)
        files[f"layers_seed{seed}.png"] = png_bytes(labelled(picture, names))
    files["layers.json"] = json_bytes(report)
    _write(out, files)
    return report


def dissect_run(
    run: str | Path,
    out: str | Path,
    layer: str,
    samples: int = 2000,
    quantile: float = 0.95,
    k: int = 4,
    top: int = 12,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """Dissect ``layer`` of the run's generator: ``dissect.json`` (units ranked by IoU, the
    best unit per concept, the ablation table), ``dissect.png`` (the ``top`` units on their
    strongest samples) and ``ablation.png`` into the new folder ``out``."""
    from ganforge.inside.dissect import ablation_plot, dissect, dissection_picture
    from ganforge.sampling import load_generator

    out = _new_folder(out)
    if top < 1:
        raise GanforgeError(f"--top must be at least 1, got {top}")
    gen = load_generator(run, device)
    result = dissect(gen, layer, samples, quantile, k, progress=progress)
    report = {"run": str(run), "network": gen.network, "step": gen.step, **result.report()}
    files = {"dissect.png": png_bytes(dissection_picture(result, top)),
             "ablation.png": ablation_plot(result), "dissect.json": json_bytes(report)}  # fmt: skip
    _write(out, files)
    return report


def dream_run(
    run: str | Path,
    out: str | Path,
    seeds: list[int],
    target: str = "critic",
    space: str = "latent",
    steps: int = 60,
    lr: float | None = None,
    class_label: int | None = None,
    device: str = "cpu",
) -> dict:
    """Dream from each seed's sample (see :func:`.dream.dream`): ``dream_seed<S>.png`` with
    the steps and ``dream.json`` into the new folder ``out``."""
    from ganforge.inside.dream import dream, dream_picture
    from ganforge.sampling import check_seed, load_critic

    out = _new_folder(out)
    if not seeds:
        raise GanforgeError("give at least one seed")
    for seed in seeds:
        check_seed(seed)
    gen, critic = load_critic(run, device)
    report = {"run": str(run), "network": gen.network, "step": gen.step, "dreams": {}}
    pictures = {}
    for seed in seeds:
        result = dream(gen, critic, seed, target, space, steps, lr, class_label=class_label)
        report["dreams"][str(seed)] = result.report()
        pictures[seed] = dream_picture(result)
    files = {f"dream_seed{seed}.png": png_bytes(picture) for seed, picture in pictures.items()}
    files["dream.json"] = json_bytes(report)
    _write(out, files)
    return report
