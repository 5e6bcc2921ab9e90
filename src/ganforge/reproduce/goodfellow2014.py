"""Goodfellow et al. (2014), "Generative Adversarial Nets": the MNIST experiment.

Trains the paper's networks (``mlp2014``: a two-layer ReLU generator with sigmoid outputs,
a dropout-maxout discriminator) on the first 50,000 MNIST training images, as the paper
did, keeping train[50000:] for choosing the Parzen width. Then:

- Table 1: the Parzen-window log-likelihood of the 10,000 test images under 10,000
  samples, beside the paper's MNIST column and the same estimate for 10,000 real training
  images (the floor no generator of this size is expected to beat);
- Figure 2: samples, each beside its nearest training image, as a PNG;
- every other ganforge metric (FID, KID, precision/recall, coverage, memorization) with its
  real-data floor, in the JSON report.

Running it again on the same folder continues the training where it stopped (or skips it,
when the run already has the steps) and measures again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge.config import RunConfig, merge
from ganforge.data import ImageSet
from ganforge.errors import GanforgeError, Interrupted
from ganforge.io.atomic import atomic_write_bytes
from ganforge.io.rundir import require_kind
from ganforge.metrics.evaluate import (
    RealData,
    evaluate_images,
    format_table,
    load_real,
    real_floor,
)
from ganforge.metrics.memorization import nearest_distances
from ganforge.sampling import load_generator, sample
from ganforge.train import resume, train
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.viz.neighbours import save_neighbour_grid

# Table 1, MNIST column: mean log-likelihood of the test set, +- standard error.
PAPER_TABLE1 = (
    ("DBN (Bengio et al., 2013)", 138.0, 2.0),
    ("Stacked CAE (Bengio et al., 2013)", 121.0, 1.6),
    ("Deep GSN (Bengio et al., 2014)", 214.0, 1.1),
    ("Adversarial nets (Goodfellow et al., 2014)", 225.0, 2.0),
)
TRAIN_IMAGES = 50_000  # the paper's split: train[:50000] to learn, train[50000:] to validate
STEPS = 2_000  # batch 100, 4 epochs: Parzen was highest here (benchmarks/README.md)
FIGURE_PAIRS = 40

REPORT = "goodfellow2014.json"
FIGURE = "figure2.png"


def recipe(
    steps: int = STEPS,
    data_dir: str | Path | None = None,
    device: str = "auto",
    download: bool = True,
) -> RunConfig:
    """The run configuration: the paper's networks, batch 100, one D step per G step and
    the non-saturating generator loss the paper recommends in practice. The optimizer is
    the family's default (Adam), not the paper's SGD with momentum and max-norm limits."""
    return merge(
        RunConfig(),
        {
            "data": {
                "name": "mnist",
                "root": str(data_dir) if data_dir else None,
                "limit": TRAIN_IMAGES,
                "download": download,
            },
            "model": {"network": "mlp2014"},
            "loss": {"name": "nonsaturating"},
            "train": {
                "steps": steps,
                "batch_size": 100,
                "k": 1,
                "device": device,
                "sample_every": 1000,
                "checkpoint_every": 1000,
                "log_every": 100,
            },
        },
    )


@dataclass
class Goodfellow2014:
    run_dir: Path
    steps: int
    train_seconds: float  # training done by this call (0 when the run already had its steps)
    metrics: dict[str, Any]  # ganforge's metrics of the samples
    floor: dict[str, Any]  # the same metrics of real training images
    report: Path
    figure: Path

    def table1(self) -> str:
        """Table 1's MNIST column, our run and the real-data reference."""
        rows = [(name, f"{mean:.0f} ± {se:g}", "paper") for name, mean, se in PAPER_TABLE1]
        m, f = self.metrics, self.floor
        ours = f"{m['parzen']:.1f} ± {m['parzen_se']:.1f}"
        rows.append((f"ganforge mlp2014, {self.steps} steps", ours, "measured"))
        real = f"{f['parzen']:.1f} ± {f['parzen_se']:.1f}"
        rows.append((f"real training images ({f['num_images']:,})", real, "real-data floor"))
        width = max(len(r[0]) for r in rows)
        lines = [f"{'model':<{width}}  {'MNIST Parzen LL':>16}  source", "-" * (width + 34)]
        lines += [f"{a:<{width}}  {b:>16}  {c}" for a, b, c in rows]
        return "\n".join(lines)

    def summary(self) -> str:
        """What the command prints: Table 1, every metric beside its floor, the files."""
        return (
            f"{self.table1()}\n\n{format_table(self.metrics, self.floor)}\n\n"
            f"wrote {self.report} and {self.figure}"
        )


def _trained_steps(out: Path, cfg: RunConfig) -> int:
    """Steps of the reproduction already in ``out`` (0 if none); another kind of run there
    is an error, found before anything slow starts."""
    if out.is_dir():
        require_kind(out, "gan")
    if not (out / LAST).exists():
        return 0
    saved = load_checkpoint(out, kind="gan")
    network, data = saved["config"]["model"]["network"], saved["config"]["data"]["name"]
    if network != cfg.model.network or data != cfg.data.name:
        raise GanforgeError(
            f"{out} holds a {network} run on {data}, not this reproduction; pick another --out"
        )
    return int(saved["step"])


def _train(
    out: Path, cfg: RunConfig, done: int, data: ImageSet | None, progress: bool
) -> tuple[int, float]:
    """Train ``out`` to ``cfg``'s steps from ``done``; (steps reached, seconds spent)."""
    if done >= cfg.train.steps:
        return done, 0.0
    if done == 0:
        result = train(cfg, out, data=data, progress=progress)
    else:
        overrides: dict[str, Any] = {
            "train": {"steps": cfg.train.steps, "device": cfg.train.device}
        }
        if cfg.data.root:
            overrides["data"] = {"root": cfg.data.root}
        result = resume(out, overrides, data=data, progress=progress)
    if result.interrupted:
        raise Interrupted(
            f"interrupted at step {result.steps}; checkpoint saved. The same command continues"
        )
    return result.steps, result.seconds


def reproduce(
    out: str | Path = "runs/goodfellow2014",
    data_dir: str | Path | None = None,
    steps: int = STEPS,
    samples: int = 10_000,
    device: str = "auto",
    download: bool = True,
    progress: bool = True,
    real: RealData | None = None,
    data: ImageSet | None = None,
) -> Goodfellow2014:
    """Train (or continue) the paper's MNIST GAN in ``out``, then measure it.

    ``samples`` images are drawn for the Parzen estimate and the other metrics (the paper
    used 10,000; the floor uses as many real training images). ``real`` and ``data`` let a
    caller pass MNIST already loaded.
    """
    if steps < 1:
        raise GanforgeError(f"steps must be at least 1, got {steps}")
    if samples < 2:
        raise GanforgeError(f"samples must be at least 2, got {samples}")
    out = Path(out)
    cfg = recipe(steps, data_dir, device, download)
    done = _trained_steps(out, cfg)
    # The real data before training: a wrong --data-dir fails before anything is written.
    real = real or load_real(data_dir, samples, download)
    done, seconds = _train(out, cfg, done, data, progress)

    generator = load_generator(out, device="cpu")
    images, _ = sample(generator, samples, seed=0)
    metrics = evaluate_images(images, real)
    floor = real_floor(real)

    pairs = images[:FIGURE_PAIRS]
    seen = real.train_float[:TRAIN_IMAGES]  # nearest among the images it trained on
    _, index = nearest_distances(pairs, seen)
    figure = out / FIGURE
    save_neighbour_grid(pairs, seen[index], figure)

    result = Goodfellow2014(out, done, seconds, metrics, floor, out / REPORT, figure)
    report = {
        "reproduction": "goodfellow2014",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "steps": done,
        "train_seconds_this_call": seconds,
        "paper_table1_mnist": [
            {"model": name, "parzen": mean, "std_error": se} for name, mean, se in PAPER_TABLE1
        ],
        "samples": metrics,
        "real_floor": floor,
        "figure2": str(figure),
    }
    atomic_write_bytes(result.report, json.dumps(report, indent=2).encode())
    return result
