"""Adversarial training: each batch's loss is taken on attacked inputs.

Methods (``method``):

- ``standard``: plain cross-entropy, the undefended baseline;
- ``goodfellow2014``: ``mix * J(x) + (1 - mix) * J(x + eps * sign(grad J))``, mix = 0.5
  (Goodfellow et al., 2014);
- ``fast``: FGSM from a uniform random start in the ball with step ``alpha`` (default
  1.25 eps), "fast adversarial training" (Wong et al., 2020);
- ``pgd``: PGD with ``pgd_steps`` steps from a random start (Madry et al., 2017).

Single-step methods can suddenly lose all robustness to multi-step attacks ("catastrophic
overfitting", Wong et al.). So after every epoch PGD is run on 1,000 held-out training
images, and the epoch with the best held-out robust accuracy is the one kept (for
``standard`` training, the one with the best held-out clean accuracy).

The data is MNIST (``dataset="mnist"``) or the bundled 8x8 digits; images are uint8 in
memory and float in [0, 1] per batch. A run folder holds ``config.json`` (resolved
settings), ``metrics.jsonl`` and TensorBoard events (per epoch), ``model.pt`` (the kept
epoch) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ganforge.data import ImageSet, load_split
from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes
from ganforge.robustness.attacks import _descend, _fgsm, pgd
from ganforge.robustness.models import (
    CLASSIFIERS,
    MODEL_FILE,
    build_classifier,
    load_classifier,
    save_classifier,
)
from ganforge.train.device import pick_device
from ganforge.train.metrics_log import MetricsLog

METHODS = ("standard", "goodfellow2014", "fast", "pgd")
UNIT_BOX = (0.0, 1.0)


@dataclass
class RobustTrainConfig:
    # The defaults are the measured CPU recipe for MNIST at eps 0.3 (benchmarks/README.md):
    # fast training collapsed on convnet-small, PGD-10 with a one-epoch eps ramp did not.
    network: str = "convnet-small"
    method: str = "pgd"
    eps: float = 0.3
    alpha: float | None = None  # fast: FGSM step (default 1.25 eps); pgd: step size
    mix: float = 0.5  # goodfellow2014: weight of the clean loss
    pgd_steps: int = 10  # pgd training steps
    epochs: float = 12
    batch_size: int = 100
    lr: float = 1e-3  # Adam's peak rate (one cycle: up for 2/5 of training, then down to 0)
    eps_warmup: float = 1.0  # epochs over which epsilon ramps up linearly from 0
    val_steps: int = 20  # PGD steps on the held-out images after each epoch
    held_out: int = 1000  # training images set aside to choose the epoch kept
    dataset: str = "mnist"
    seed: int = 0

    def validate(self) -> None:
        if self.network not in CLASSIFIERS:
            CLASSIFIERS.get(self.network)  # raises the one-line error with the choices
        if self.method not in METHODS:
            raise GanforgeError(f"unknown method {self.method!r}; choose one of: {METHODS}")
        if self.eps < 0 or (self.method != "standard" and self.eps == 0):
            raise GanforgeError(f"epsilon must be > 0 for adversarial training, got {self.eps}")
        if not 0 <= self.mix <= 1:
            raise GanforgeError(f"mix must be in [0, 1], got {self.mix}")
        numbers = (self.epochs, self.batch_size, self.lr, self.pgd_steps, self.held_out)
        if min(numbers) <= 0 or self.val_steps < 1:
            raise GanforgeError(
                "epochs, batch_size, lr, pgd_steps, held_out and val_steps must be positive"
            )
        if (self.alpha is not None and self.alpha <= 0) or self.eps_warmup < 0:
            raise GanforgeError("alpha must be > 0 and eps_warmup >= 0")


@dataclass
class RobustTrainResult:
    out: Path
    config: RobustTrainConfig
    best_epoch: int
    test_clean_accuracy: float
    held_out_robust_accuracy: float  # of the kept epoch
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        c = self.config
        return (
            f"{c.network} trained with {c.method} (eps {c.eps:g}) in {self.seconds / 60:.1f} "
            f"min: kept epoch {self.best_epoch}, clean test accuracy "
            f"{100 * self.test_clean_accuracy:.2f}%, held-out PGD-{c.val_steps} accuracy "
            f"{100 * self.held_out_robust_accuracy:.2f}%\nwrote {self.out / MODEL_FILE}; "
            f"measure it with: ganforge attack --model {self.out}"
        )


def attack_step(config: RobustTrainConfig, eps: float) -> float:
    """The attack's step size: ``alpha`` if given, else 1.25 eps (fast), eps (the 2014
    method's FGSM) or 2.5 eps / steps (pgd)."""
    if config.alpha is not None:
        return config.alpha
    return {"fast": 1.25 * eps, "pgd": 2.5 * eps / config.pgd_steps}.get(config.method, eps)


def adversarial_loss(
    model: nn.Module, x: Tensor, y: Tensor, config: RobustTrainConfig, eps: float
) -> Tensor:
    """The batch loss of ``config.method`` at radius ``eps``; ``x`` in [0, 1] (trusted: the
    per-call input checks of the public attacks would cost a host sync per step)."""
    method = config.method
    if method == "standard" or eps == 0:
        return F.cross_entropy(model(x), y)
    alpha = attack_step(config, eps)
    if method == "goodfellow2014":
        adv = _fgsm(model, x, y, eps, UNIT_BOX, targeted=False)
        clean = F.cross_entropy(model(x), y)
        return config.mix * clean + (1 - config.mix) * F.cross_entropy(model(adv), y)
    steps = 1 if method == "fast" else config.pgd_steps
    adv = _descend(model, x, y, eps, "linf", steps, alpha, True, UNIT_BOX, False, None)
    return F.cross_entropy(model(adv), y)


def _one_cycle(step: int, total: int, peak: float) -> float:
    rise = max(1, int(0.4 * total))
    if step < rise:
        return peak * (step + 1) / rise
    return peak * max(0.0, (total - step) / max(1, total - rise))


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1000) -> float:
    """Clean accuracy of ``model`` on float images ``x`` in [0, 1]."""
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
        for i in range(0, len(x), batch_size)
    )
    return correct / max(1, len(x))


def robust_accuracy(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int, batch_size: int = 500
) -> float:
    """Accuracy under L-inf PGD (one random start) at ``eps``."""
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = pgd(model, xb, yb, eps, steps=steps)
        with torch.no_grad():
            correct += int((model(adv).argmax(1) == yb).sum())
    return correct / max(1, len(x))


def to_unit(images: Tensor) -> Tensor:
    """uint8 images [0, 255] -> float32 in the attack box [0, 1]."""
    return images.float().div_(255.0)


def robust_train(
    out: str | Path,
    config: RobustTrainConfig | None = None,
    data_dir: str | Path | None = None,
    train: ImageSet | None = None,
    test: ImageSet | None = None,
    device: str = "auto",
    download: bool = True,
    progress: bool = True,
) -> RobustTrainResult:
    """Train ``config.network`` with ``config.method`` on MNIST (or on the given ``train``
    and ``test`` image sets) into the run folder ``out``."""
    config = config or RobustTrainConfig()
    config.validate()
    out = Path(out)
    if (out / "summary.json").exists():
        raise GanforgeError(f"{out} already holds a trained model; choose another --out")
    if (out / MODEL_FILE).exists():
        raise GanforgeError(
            f"{out} holds an interrupted run (a {MODEL_FILE} without summary.json); "
            "delete it or choose another --out"
        )
    if train is None:
        train = load_split(config.dataset, "train", data_dir, download)
    if test is None:
        test = load_split(config.dataset, "test", data_dir, download)
    if train.labels is None or test.labels is None:
        raise GanforgeError("robust training needs labelled images")
    if len(train) < config.held_out + config.batch_size:
        raise GanforgeError(
            f"{len(train)} training images are too few for {config.held_out} held out and "
            f"batches of {config.batch_size}"
        )
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    # A fixed held-out slice (by seed) watches for catastrophic overfitting.
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))
    held, fit = order[: config.held_out], order[config.held_out :]
    images = train.images.to(dev)
    labels = train.labels.to(dev)
    x_held, y_held = to_unit(images[held.to(dev)]), labels[held.to(dev)]
    x_fit, y_fit = images[fit.to(dev)], labels[fit.to(dev)]
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    shape = tuple(train.images.shape[1:])
    model = build_classifier(config.network, shape, num_classes).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    batches = EpochSampler(len(x_fit), config.batch_size, config.seed, dev)
    per_epoch = len(x_fit) // config.batch_size
    total = max(1, math.ceil(config.epochs * per_epoch))

    out.mkdir(parents=True, exist_ok=True)
    resolved = dataclasses.asdict(config) | {"alpha_at_full_eps": attack_step(config, config.eps)}
    resolved = json.dumps(resolved, indent=2)
    atomic_write_bytes(out / "config.json", resolved.encode())
    log = MetricsLog(out)
    info = {"network": config.network, "shape": list(shape), "num_classes": num_classes}
    history: list[dict[str, Any]] = []
    best: tuple[float, int] = (-1.0, 0)
    start = time.perf_counter()
    train_seconds = 0.0
    running = torch.zeros((), device=dev)
    bar = tqdm(total=total, desc=f"{config.method} training", disable=not progress)
    try:
        for step in range(total):
            epoch_f = step / per_epoch
            ramp = min(1.0, epoch_f / config.eps_warmup) if config.eps_warmup > 0 else 1.0
            for group in opt.param_groups:
                group["lr"] = _one_cycle(step, total, config.lr)
            i = batches.next()
            model.train()
            loss = adversarial_loss(model, to_unit(x_fit[i]), y_fit[i], config, config.eps * ramp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.detach()
            bar.update()
            if (step + 1) % per_epoch == 0 or step + 1 == total:
                # Held-out check (not counted as training time).
                train_seconds += time.perf_counter() - start
                model.eval()
                epoch = math.ceil((step + 1) / per_epoch)
                n = (step % per_epoch) + 1
                clean = accuracy(model, x_held, y_held)
                row = {
                    "epoch": epoch,
                    "loss": float(running) / n,
                    "held_out_clean": clean,
                    # An attack of radius 0 changes nothing: robust accuracy is the clean one.
                    "held_out_robust": robust_accuracy(
                        model, x_held, y_held, config.eps, config.val_steps
                    )
                    if config.eps > 0
                    else clean,
                    "train_seconds": round(train_seconds, 1),
                }
                running.zero_()
                history.append(row)
                log.scalars(step + 1, {k: v for k, v in row.items() if k != "epoch"})
                robust = config.method != "standard"
                score = row["held_out_robust"] if robust else row["held_out_clean"]
                if score > best[0]:
                    best = (score, epoch)
                    save_classifier(
                        out / MODEL_FILE,
                        model,
                        {**info, "epoch": epoch, "train": dataclasses.asdict(config)},
                    )
                bar.set_postfix(
                    clean=f"{row['held_out_clean']:.3f}", robust=f"{row['held_out_robust']:.3f}"
                )
                start = time.perf_counter()
    finally:
        bar.close()
        log.close()

    kept, _ = load_classifier(out / MODEL_FILE)
    kept = kept.to(dev)
    test_clean = accuracy(kept, to_unit(test.images.to(dev)), test.labels.to(dev))
    kept_row = history[best[1] - 1]
    result = RobustTrainResult(
        out, config, best[1], test_clean, kept_row["held_out_robust"], train_seconds, history
    )
    summary = {
        "config": dataclasses.asdict(config),
        "kept_epoch": best[1],
        "test_clean_accuracy": test_clean,
        "held_out_robust_accuracy": kept_row["held_out_robust"],
        "train_seconds": round(train_seconds, 1),
        "device": str(dev),
        "history": history,
    }
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    return result
