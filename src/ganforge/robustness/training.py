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
memory and float in [0, 1] per batch. A run folder holds ``manifest.json`` (kind
``robust``), ``config.yaml``, ``metrics.jsonl`` and TensorBoard events (per epoch),
``checkpoints/last.pt`` (continue an interrupted run with the same command), ``model.pt``
(the kept epoch) and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.config import option, registry_names
from ganforge.data import SPLIT_DATASETS, ImageSet, load_split
from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError, Interrupted
from ganforge.io.atomic import atomic_write_bytes
from ganforge.io.rundir import check_out_folder
from ganforge.robustness.attacks import _descend, _fgsm, pgd
from ganforge.robustness.models import (
    CLASSIFIERS,
    MODEL_FILE,
    build_classifier,
    load_classifier,
    save_classifier,
)
from ganforge.train import dist
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.train.device import pick_device
from ganforge.train.engine import Callback, Engine, Phase, Players, Recipe
from ganforge.train.metrics_log import MetricsLog
from ganforge.train.optim import build_optimizer

METHODS = ("standard", "goodfellow2014", "fast", "pgd")
UNIT_BOX = (0.0, 1.0)


@dataclass
class RobustTrainConfig:
    # The defaults are the measured CPU recipe for MNIST at eps 0.3 (benchmarks/README.md):
    # fast training collapsed on convnet-small, PGD-10 with a one-epoch eps ramp did not.
    network: str = option(
        "convnet-small",
        "classifier network",
        choices=registry_names("ganforge.robustness.models", "CLASSIFIERS"),
    )
    method: str = option("pgd", "how each batch is attacked", choices=METHODS)
    eps: float = option(0.3, "L-inf radius")
    alpha: float | None = option(
        None, "attack step", default_text="1.25 eps for fast, 2.5 eps / steps for pgd"
    )
    mix: float = option(0.5, "goodfellow2014: weight of the clean loss")
    pgd_steps: int = option(10, "PGD steps for --method pgd")
    epochs: float = option(12.0, "passes over the training images")
    batch_size: int = option(100, "images per batch")
    lr: float = option(1e-3, "Adam's peak rate (one cycle: up for 2/5 of training, then to 0)")
    eps_warmup: float = option(1.0, "epochs to ramp epsilon up from 0")
    val_steps: int = option(20, "PGD steps on the held-out images after each epoch")
    held_out: int = option(1000, "training images set aside to pick the epoch kept")
    dataset: str = option("mnist", "training and test images", choices=SPLIT_DATASETS)
    seed: int = option(0, "random seed")

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
        if not 0 <= self.seed < 2**31:
            raise GanforgeError(f"seed must be in [0, 2^31), got {self.seed}")
        values = (self.eps, self.mix, self.epochs, self.lr, self.eps_warmup, self.alpha or 1.0)
        if not all(math.isfinite(v) for v in values):
            raise GanforgeError("eps, mix, epochs, lr, eps_warmup and alpha must be finite")


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
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: RobustTrainConfig,
    eps: float,
    trained: nn.Module | None = None,
) -> Tensor:
    """The batch loss of ``config.method`` at radius ``eps``; ``x`` in [0, 1] (trusted: the
    per-call input checks of the public attacks would cost a host sync per step). The
    attack runs ``model``; the loss that trains it runs ``trained`` (its DDP wrapper on
    several processes; ``model`` itself by default)."""
    method, trained = config.method, trained or model
    if method == "standard" or eps == 0:
        return F.cross_entropy(trained(x), y)
    alpha = attack_step(config, eps)
    if method == "goodfellow2014":
        adv = _fgsm(model, x, y, eps, UNIT_BOX, targeted=False)
        clean = F.cross_entropy(trained(x), y)
        return config.mix * clean + (1 - config.mix) * F.cross_entropy(trained(adv), y)
    steps = 1 if method == "fast" else config.pgd_steps
    adv = _descend(model, x, y, eps, "linf", steps, alpha, True, UNIT_BOX, False, None)
    return F.cross_entropy(trained(adv), y)


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


CHECKPOINT_EVERY = 100  # steps (about 30 s of the default recipe on 2 CPU cores)


class RobustRecipe(Recipe):
    """Adversarial training as a recipe: one player, ``classifier``, and one phase, "C main",
    whose loss is taken on attacked inputs. After every epoch (a callback) PGD runs on the
    held-out images; the best epoch is written to ``model.pt``. On several processes each
    attacks and learns from its share of the batch (random starts are its own); rank 0
    measures the held-out images and writes."""

    kind = "robust"
    distributed = True

    def __init__(
        self, config: RobustTrainConfig, model: nn.Module, fit: tuple[Tensor, Tensor],
        held: tuple[Tensor, Tensor], per_epoch: int, out: Path, info: dict[str, Any],
    ) -> None:  # fmt: skip
        device = fit[0].device
        self.config, self.per_epoch, self.out, self.info = config, per_epoch, out, info
        self.x_fit, self.y_fit = fit
        self.x_held, self.y_held = held
        opt = build_optimizer("adam", model.parameters(), device, lr=config.lr)
        self.players = Players(device)
        self.players.add("classifier", model, opt, "one-cycle")
        try:
            self.batches = EpochSampler(
                len(self.x_fit), config.batch_size, config.seed, device,
                dist.rank(), dist.world_size(),
            )  # fmt: skip
        except ValueError as err:
            raise GanforgeError(str(err)) from None
        self.history: list[dict[str, Any]] = []
        self.best: tuple[float, int] = (-1.0, 0)
        self.epoch_loss = math.nan  # the engine's mean of the epoch's losses (on_log)
        self.log: MetricsLog | None = None

    def phases(self) -> list[Phase]:
        return [Phase("C main", self.c_main)]

    def c_main(self, step: int) -> dict[str, Tensor]:
        c = self.config
        ramp = min(1.0, step / self.per_epoch / c.eps_warmup) if c.eps_warmup > 0 else 1.0
        i = self.batches.next()
        model = self.players["classifier"].train()
        trained = self.players.trainable("classifier")
        loss = adversarial_loss(
            model, to_unit(self.x_fit[i]), self.y_fit[i], c, c.eps * ramp, trained
        )
        self.players.step("classifier", loss)
        return {"loss": loss.detach()}

    def end_epoch(self, engine: Engine) -> None:
        """Held-out clean and PGD accuracy (not training time); keep the best epoch."""
        c, step = self.config, engine.step
        model = self.players["classifier"].eval()
        epoch = math.ceil(step / self.per_epoch)
        row = dist.from_writer(self._measure(model, epoch, engine) if dist.is_writer() else None)
        self.history.append(row)
        if self.log is not None:
            self.log.scalars(step, {k: v for k, v in row.items() if k != "epoch"})
        score = row["held_out_robust"] if c.method != "standard" else row["held_out_clean"]
        if score > self.best[0]:
            self.best = (score, epoch)
            if dist.is_writer():
                train = dataclasses.asdict(c)
                save_classifier(
                    self.out / MODEL_FILE, model, {**self.info, "epoch": epoch, "train": train}
                )

    def _measure(self, model: nn.Module, epoch: int, engine: Engine) -> dict[str, Any]:
        c = self.config
        clean = accuracy(model, self.x_held, self.y_held)
        return {
            "epoch": epoch,
            "loss": self.epoch_loss,
            "held_out_clean": clean,
            # An attack of radius 0 changes nothing: robust accuracy is the clean one.
            "held_out_robust": robust_accuracy(model, self.x_held, self.y_held, c.eps, c.val_steps)
            if c.eps > 0
            else clean,
            "train_seconds": round(engine.seconds, 1),
        }

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        shown = {"loss": f"{stats.get('loss', math.nan):.3f}"}
        if self.history:
            last = self.history[-1]
            shown |= {"clean": f"{last['held_out_clean']:.3f}",
                      "robust": f"{last['held_out_robust']:.3f}"}  # fmt: skip
        return shown

    def state_dict(self) -> dict[str, Any]:
        return {
            "sampler": self.batches.state_dict(),
            "history": self.history,
            "best": list(self.best),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["sampler"])
        self.history = list(state["history"])
        self.best = (float(state["best"][0]), int(state["best"][1]))


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
    and ``test`` image sets) into the run folder ``out``. A folder holding an interrupted
    run with the same settings is continued exactly where it stopped."""
    config = config or RobustTrainConfig()
    config.validate()
    out = Path(out)
    check_out_folder(out, "robust")
    if (out / "summary.json").exists():
        raise GanforgeError(f"{out} already holds a trained model; choose another --out")
    state = None
    if (out / LAST).exists():
        state = load_checkpoint(out, kind="robust")
        if state.get("config") != dataclasses.asdict(config):
            raise GanforgeError(
                f"{out} holds an interrupted run with other settings ({state.get('config')}); "
                "give the same settings to continue it, or choose another --out"
            )
    elif (out / MODEL_FILE).exists():
        raise GanforgeError(
            f"{out} holds an interrupted run of an older ganforge (a {MODEL_FILE} without "
            "summary.json or a checkpoint); delete it or choose another --out"
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
    dist.setup(dev)  # under torchrun: each process trains its share of every batch
    dist.barrier()  # every process has looked at the folder before rank 0 writes
    torch.manual_seed(config.seed)
    # A fixed held-out slice (by seed) watches for catastrophic overfitting.
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))
    held, fit = order[: config.held_out].to(dev), order[config.held_out :].to(dev)
    images, labels = train.images.to(dev), train.labels.to(dev)
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    shape = tuple(train.images.shape[1:])
    model = build_classifier(config.network, shape, num_classes).to(dev)
    per_epoch = (len(train) - config.held_out) // config.batch_size
    total = max(1, math.ceil(config.epochs * per_epoch))
    info = {"network": config.network, "shape": list(shape), "num_classes": num_classes}
    recipe = RobustRecipe(
        config, model, (images[fit], labels[fit]), (to_unit(images[held]), labels[held]),
        per_epoch, out, info,
    )  # fmt: skip
    engine = Engine(
        recipe,
        total,
        checkpoint=out / LAST,
        checkpoint_every=CHECKPOINT_EVERY,
        log_every=per_epoch,  # the window is the epoch: its mean loss goes in the epoch's row
        on_log=lambda step, stats: setattr(recipe, "epoch_loss", stats["loss"]),
        callbacks=[Callback(per_epoch, recipe.end_epoch)],
        header={"config": dataclasses.asdict(config)},
        progress=progress,
        desc=f"{config.method} training",
        seed=config.seed,
    )
    if state is not None:
        engine.load_state_dict(state, config.network)
    with engine.writing(out, "robust", config):
        if (out / "summary.json").exists():
            raise GanforgeError(f"{out} was finished by another process meanwhile")
        recipe.log = MetricsLog(out, engine.step) if dist.is_writer() else None
        try:
            result = engine.run()
        finally:
            if recipe.log is not None:
                recipe.log.close()
        if result.interrupted:
            raise Interrupted(
                f"interrupted at step {result.steps} of {total}; checkpoint saved. The same "
                "command continues from there"
            )
        return _finish(out, config, recipe, engine, test, dev)


def _finish(out, config, recipe, engine, test, dev) -> RobustTrainResult:
    """The kept epoch's test accuracy, and summary.json (which marks the run finished), by
    rank 0."""
    test_clean = None
    if dist.is_writer():
        kept, _ = load_classifier(out / MODEL_FILE)
        kept = kept.to(dev)
        test_clean = accuracy(kept, to_unit(test.images.to(dev)), test.labels.to(dev))
    test_clean = dist.from_writer(test_clean)
    best_epoch = recipe.best[1]
    kept_row = recipe.history[best_epoch - 1]
    history = recipe.history
    result_ = RobustTrainResult(
        out, config, best_epoch, test_clean, kept_row["held_out_robust"],
        engine.seconds, history,
    )  # fmt: skip
    summary = {
        "config": dataclasses.asdict(config),
        "alpha_at_full_eps": attack_step(config, config.eps),
        "kept_epoch": best_epoch,
        "test_clean_accuracy": test_clean,
        "held_out_robust_accuracy": kept_row["held_out_robust"],
        "train_seconds": round(engine.seconds, 1),
        "device": str(dev),
        "history": history,
    }
    if dist.is_writer():
        atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    return result_
