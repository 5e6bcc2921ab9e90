"""The MNIST semi-supervised protocol of Salimans et al. (2016), with its baselines.

For each labelled count N and seed: a balanced subset of N training images (N/10 per class,
chosen by the seed) keeps its labels, all 60,000 training images serve as unlabelled data,
and the error count is measured on the 10,000 test images. Beside it, the same classifier
is trained supervised on the N labelled images alone, and on all 60,000 labels, so the gain
is shown. Results go to ``semisupervised.json`` in the run folder after every seed, and a
later call with the same settings skips the seeds already there (Ctrl-C loses one seed at
most). Within a seed, each fit checkpoints to ``checkpoints/`` (every 1,000 updates and on
Ctrl-C), so an interrupted seed continues exactly where it stopped. Each seed's classifier is
saved under ``models/``; ``classifier.pt`` is the first.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.config import option, save_yaml
from ganforge.data import ImageSet, load_mnist
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_save, atomic_write_bytes
from ganforge.io.rundir import RunLock, check_out_folder, write_manifest
from ganforge.semisupervised.estimator import (
    BASELINE_BATCH_SIZE,
    BASELINE_UPDATES,
    GAN_BATCH_SIZE,
    GAN_EPOCHS,
    GAN_LR,
    RECIPE,
    SemiSupervisedGAN,
    SupervisedClassifier,
)
from ganforge.semisupervised.labels import balanced_subset
from ganforge.semisupervised.nets import CLASSIFIER_UNITS, GENERATOR_UNITS

REPORT = "semisupervised.json"
TEST_IMAGES = 10_000

# Test errors out of 10,000 (mean +- std over seeds) as published, by labelled count.
PUBLISHED: dict[int, list[tuple[str, float, float]]] = {
    20: [("Improved GAN (Salimans et al., 2016)", 1677, 452)],
    50: [("Improved GAN (Salimans et al., 2016)", 221, 136)],
    100: [
        ("Improved GAN (Salimans et al., 2016)", 93, 6.5),
        ("Bad GAN (Dai et al., 2017)", 79.5, 9.8),
    ],
    200: [("Improved GAN (Salimans et al., 2016)", 90, 4.2)],
}


@dataclass
class Settings:
    """What a result depends on; a run folder continues only with equal settings."""

    epochs: float = option(GAN_EPOCHS, "passes over the 60,000 unlabelled images")
    # More updates per minute beat larger batches on a CPU.
    batch_size: int = option(GAN_BATCH_SIZE, "images of each kind per GAN update")
    lr: float = option(GAN_LR, "Adam's rate for both players (linearly to 0 over the 2nd half)")
    baseline_batch_size: int = option(BASELINE_BATCH_SIZE, "batch of the labels-only baselines")
    supervised_updates: int = option(BASELINE_UPDATES, "updates on the N labelled images alone")
    full_updates: int = option(6000, "updates on all 60,000 labels (10 epochs)")
    units: tuple[int, ...] = option(CLASSIFIER_UNITS, "the classifier's hidden layers")
    generator_units: tuple[int, ...] = option(GENERATOR_UNITS, "the generator's hidden layers")
    # Which train/test images; run_experiment fills it in.
    data: str = option("mnist", "", cli=False)
    recipe: int = option(RECIPE, "", cli=False)  # the training step's version (estimator.RECIPE)

    def __post_init__(self) -> None:  # JSON gives lists back
        self.units, self.generator_units = tuple(self.units), tuple(self.generator_units)

    def validate(self) -> None:
        """Refuse bad settings before anything slow starts (the baselines run 20 minutes
        into a seed)."""
        if not (math.isfinite(self.epochs) and self.epochs > 0):
            raise GanforgeError(f"--epochs must be positive, got {self.epochs}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise GanforgeError(f"--lr must be positive, got {self.lr}")
        if self.batch_size < 2:
            raise GanforgeError(f"--batch-size must be at least 2, got {self.batch_size}")
        counts = ("baseline_batch_size", "supervised_updates", "full_updates")
        for key in counts:
            if getattr(self, key) < 1:
                raise GanforgeError(f"--{key.replace('_', '-')} must be at least 1")
        if min(self.units + self.generator_units, default=0) < 1:
            raise GanforgeError("--units and --generator-units must be positive layer sizes")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items()}


@dataclass
class SemiSupervisedReport:
    settings: Settings
    results: list[dict[str, Any]] = field(default_factory=list)

    def errors(self, labels: int, method: str) -> list[int]:
        return [r[method] for r in self.results if r["labels"] == labels]

    def table(self) -> str:
        """Markdown: test errors (of 10,000 for MNIST), mean +- sample std over seeds, and
        the published rows for MNIST, per labelled count."""
        lines = [
            "| labels | method | test errors (mean ± std) | error % | seeds |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        names = {
            "gan": "semi-supervised GAN (ours)",
            "supervised": "same classifier, labelled images only",
            "full": "same classifier, all training labels",
        }
        for n in sorted({r["labels"] for r in self.results}):
            size = next(r["test_images"] for r in self.results if r["labels"] == n)
            for method, name in names.items():
                errs = self.errors(n, method)
                mean, std = (
                    float(np.mean(errs)),
                    float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0,
                )
                pct = 100 * mean / size
                lines.append(f"| {n} | {name} | {mean:.1f} ± {std:.1f} | {pct:.2f} | {len(errs)} |")
            for name, mean, std in PUBLISHED.get(n, []) if size == TEST_IMAGES else []:
                lines.append(
                    f"| {n} | {name}, published | {mean:g} ± {std:g} | {mean / 100:.2f} | - |"
                )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "results": self.results}


def _read_report(path: Path) -> SemiSupervisedReport:
    try:
        raw = json.loads(path.read_text())
        # Reports from before the field ran recipe 1.
        settings = Settings(**{"recipe": 1, **raw["settings"]})
        return SemiSupervisedReport(settings, list(raw["results"]))
    except (ValueError, KeyError, TypeError):
        raise GanforgeError(
            f"{path} is not a semi-supervised report of this version; use another --out"
        ) from None


def _load_report(path: Path, settings: Settings) -> SemiSupervisedReport:
    if not path.is_file():
        return SemiSupervisedReport(settings)
    report = _read_report(path)
    if report.settings != settings:
        raise GanforgeError(
            f"{path.parent} holds results for other settings ({report.settings.to_dict()}); "
            "use another --out to compare settings"
        )
    return report


def combine_reports(folders: list[str | Path]) -> SemiSupervisedReport:
    """The results of several run folders with equal settings as one report, for seeds
    split across folders or machines with ``first_seed``."""
    if not folders:
        raise GanforgeError("give at least one run folder to combine")
    reports = []
    for folder in folders:
        path = Path(folder) / REPORT
        if not path.is_file():
            raise GanforgeError(f"{folder} holds no {REPORT}; is it a semisupervised run folder?")
        reports.append(_read_report(path))
    for folder, report in zip(folders[1:], reports[1:], strict=True):
        if report.settings != reports[0].settings:
            raise GanforgeError(
                f"{folder} and {folders[0]} were run with different settings; "
                "only equal settings can be combined"
            )
    results = [r for report in reports for r in report.results]
    keys = [(r["labels"], r["seed"]) for r in results]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        n, seed = repeated[0]
        raise GanforgeError(f"labels {n} seed {seed} is in more than one folder")
    results.sort(key=lambda r: (r["labels"], r["seed"]))
    return SemiSupervisedReport(reports[0].settings, results)


def run_experiment(
    out: str | Path,
    data_dir: str | None = None,
    labels: tuple[int, ...] = (100,),
    seeds: int = 5,
    settings: Settings | None = None,
    first_seed: int = 0,
    device: str = "auto",
    download: bool = True,
    progress: bool = True,
    data: tuple[ImageSet, ImageSet] | None = None,
) -> SemiSupervisedReport:
    """Run (or continue) the protocol into run folder ``out``; see the module docstring.
    Seeds run from ``first_seed`` to ``first_seed + seeds - 1``, so that seeds can be
    split across folders or machines. ``data`` (train, test) replaces MNIST, for tests and
    other labelled image sets."""
    settings = settings or Settings()
    if seeds < 1:
        raise GanforgeError(f"--seeds must be at least 1, got {seeds}")
    if not (0 <= first_seed and first_seed + seeds <= 2**31):
        raise GanforgeError(
            f"--first-seed {first_seed} with --seeds {seeds}: seeds must lie in [0, 2^31)"
        )
    settings.validate()
    if settings.recipe != RECIPE:  # the field records the step; it cannot choose one
        raise GanforgeError(
            f"this version trains with recipe {RECIPE} only, the settings ask for {settings.recipe}"
        )
    if data is None:
        bad = [n for n in labels if n < 10 or n % 10]
        if bad:  # before the data is read: MNIST has 10 classes
            raise GanforgeError(f"--labels must be multiples of the 10 classes, got {bad[0]}")
    out = Path(out)
    check_out_folder(out, "semisupervised")
    if data is not None:
        settings = dataclasses.replace(settings, data=f"{data[0].name}/{data[1].name}")
    report = _load_report(out / REPORT, settings)
    if data is None:
        data = (
            load_mnist(data_dir, "train", download=download),
            load_mnist(data_dir, "test", download=download),
        )
    train, test = data
    if train.labels is None or test.labels is None:
        raise GanforgeError("the semi-supervised protocol needs labelled train and test images")
    for n in labels:  # refuse bad counts before anything slow or written
        balanced_subset(train.labels, n, 0)

    def pending() -> list[tuple[int, int]]:
        return [
            (n, seed)
            for n in dict.fromkeys(labels)  # each count once, in the order given
            for seed in range(first_seed, first_seed + seeds)
            if not any((r["labels"], r["seed"]) == (n, seed) for r in report.results)
        ]

    if not pending():
        return report
    with RunLock(out):  # a second process on this folder is refused here
        report = _load_report(out / REPORT, settings)  # as the last writer left it
        write_manifest(out, "semisupervised")
        save_yaml(settings, out / "config.yaml")
        _run_seeds(out, report, pending(), train, test, settings, device, progress)
    return report


def _run_seeds(out, report, todo, train, test, settings, device, progress) -> None:
    # The all-labels baseline does not depend on N: once per seed, reused across counts.
    full = {r["seed"]: r["full"] for r in report.results}
    for n, seed in todo:
        result = _one_seed(out, train, test, n, seed, settings, device, progress, full)
        report.results.append(result)
        atomic_write_bytes(out / REPORT, json.dumps(report.to_dict(), indent=2).encode())
        for name in _checkpoints(n, seed, with_full=True):  # recorded: no longer needed
            (out / CHECKPOINTS / name).unlink(missing_ok=True)
        if progress:
            print(
                f"labels {n} seed {seed}: {result['gan']} errors (supervised only "
                f"{result['supervised']}, all labels {result['full']}), "
                f"{result['gan_seconds']:.0f} s"
            )


CHECKPOINTS = "checkpoints"


def _checkpoints(n: int, seed: int, with_full: bool = False) -> list[str]:
    """The checkpoint files of one seed's fits (the all-labels one is shared by counts)."""
    names = [f"labels{n}-seed{seed}-gan.pt", f"labels{n}-seed{seed}-supervised.pt"]
    return names + ([f"seed{seed}-full.pt"] if with_full else [])


def _one_seed(out, train, test, n, seed, settings, device, progress, full) -> dict[str, Any]:
    chosen = balanced_subset(train.labels, n, seed)
    x_lab, y_lab = train.images[chosen], train.labels[chosen]
    s = settings

    def errors(model) -> int:
        return int((model.predict(test.images) != test.labels).sum())

    gan_file, supervised_file = (out / CHECKPOINTS / name for name in _checkpoints(n, seed))
    gan = SemiSupervisedGAN(
        units=s.units,
        generator_units=s.generator_units,
        epochs=s.epochs,
        batch_size=s.batch_size,
        lr=s.lr,
        device=device,
        seed=seed,
        progress=progress,
    ).fit(x_lab, y_lab, train.images, checkpoint=gan_file)
    gan_seconds = gan.fit_seconds_
    name = f"labels{n}-seed{seed}.pt"
    gan.save(out / "models" / name)
    if not (out / "classifier.pt").exists():
        atomic_save(out / "classifier.pt", lambda tmp: shutil.copyfile(out / "models" / name, tmp))

    def baseline(updates: int) -> SupervisedClassifier:
        return SupervisedClassifier(
            units=s.units,
            updates=updates,
            batch_size=s.baseline_batch_size,
            lr=s.lr,
            device=device,
            seed=seed,
            progress=progress,
        )

    supervised = baseline(s.supervised_updates).fit(x_lab, y_lab, checkpoint=supervised_file)
    if seed not in full:
        full_file = out / CHECKPOINTS / f"seed{seed}-full.pt"
        model = baseline(s.full_updates).fit(train.images, train.labels, checkpoint=full_file)
        full[seed] = errors(model)
    return {
        "labels": n,
        "seed": seed,
        "labelled_indices": chosen.tolist(),
        "gan": errors(gan),
        "supervised": errors(supervised),
        "full": full[seed],
        "gan_seconds": round(gan_seconds, 1),
        "test_images": len(test),
    }
