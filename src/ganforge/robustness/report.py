"""Attack a saved classifier on a test set and write the evidence: ``robustness.json``,
``robustness.png`` (accuracy against epsilon) and ``examples.png`` (clean, adversarial and
their difference)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganforge.data import load_split
from ganforge.errors import GanforgeError
from ganforge.robustness.attacks import pgd
from ganforge.robustness.evaluate import RobustnessReport, evaluate_robustness, save_report
from ganforge.robustness.models import classifier_file, load_classifier
from ganforge.robustness.training import to_unit
from ganforge.train.device import pick_device
from ganforge.viz.grid import save_grid

EXAMPLES = 8


def default_out(model: str | Path, norm: str) -> Path:
    """``attack-<norm>`` in the model's run folder."""
    return classifier_file(model).parent / f"attack-{norm}"


def attack_saved_model(
    model: str | Path,
    eps: list[float] | tuple[float, ...] = (0.3,),
    out: str | Path | None = None,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 5,
    n: int | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    device: str = "auto",
    download: bool = True,
    seed: int = 0,
    progress: bool = True,
    force: bool = False,
) -> tuple[RobustnessReport, Path]:
    """Evaluate the classifier saved at ``model`` (file or ``robust-train`` run folder) on
    the first ``n`` test images of ``dataset`` (default: the one it was trained on). A
    report already in ``out`` is replaced only with ``force``."""
    net, info = load_classifier(model)
    out = Path(out) if out is not None else default_out(model, norm)
    if (out / "robustness.json").exists() and not force:
        raise GanforgeError(f"{out} already holds a report; pass --force to replace it")
    dataset = dataset or info.get("train", {}).get("dataset", "mnist")
    test = load_split(dataset, "test", data_dir, download)
    if tuple(test.images.shape[1:]) != tuple(info["shape"]):
        raise GanforgeError(
            f"the model takes {tuple(info['shape'])} images, {dataset} has "
            f"{tuple(test.images.shape[1:])}"
        )
    if n is not None:
        if n < 1:
            raise GanforgeError(f"n (images to attack) must be at least 1, got {n}")
        test = test.subset(n)
    dev = pick_device(device)
    net = net.to(dev).requires_grad_(False)
    x, y = to_unit(test.images.to(dev)), test.labels.to(dev)
    if tuple(info.get("box", (0.0, 1.0))) != (0.0, 1.0):
        raise GanforgeError(f"the model takes inputs in {info['box']}; attack supports [0, 1]")
    report = evaluate_robustness(
        net, x, y, eps, norm=norm, steps=steps, restarts=restarts, seed=seed, progress=progress
    )
    save_report(report, out)
    save_examples(net, x[:EXAMPLES], y[:EXAMPLES], max(report.eps), norm, steps, out)
    return report, out


def save_examples(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, norm: str, steps: int, out: Path
) -> None:
    """``examples.png``: rows of clean images, their PGD adversarials at ``eps``, and the
    difference (grey is 0; white and black are +-eps per pixel for L-inf)."""
    adv = pgd(model, x, y, eps, norm, steps=steps, generator=torch.Generator().manual_seed(0))
    scale = eps if norm == "linf" else float((adv - x).abs().max().clamp_min(1e-12))
    diff = ((adv - x) / max(scale, 1e-12)).clamp(-1, 1)
    rows = torch.cat([x * 2 - 1, adv * 2 - 1, diff]).cpu()
    save_grid(rows, out / "examples.png", nrow=len(x), upscale=4)
