"""Training a real-or-generated detector: a two-class classifier (0 real, 1 generated) of
the robustness package's networks, trained as a recipe on the one engine.

The data: real training images and samples of one or more GAN run folders (in equal
numbers), optionally each degraded at random (blur, resize, JPEG: :mod:`.degrade`) so that
what the detector learns survives re-encoding. A held-out share of both is kept aside:
the threshold on the detector's probability is calibrated there (the one with the best
held-out accuracy), and the held-out accuracy and average precision are reported. The
folder gets ``manifest.json`` (kind ``detector``), ``config.yaml``, ``metrics.jsonl``,
``checkpoints/last.pt``, ``detector.pt`` and ``summary.json``. Inputs to the network are
float NCHW in [0, 1] (the robustness package's box, where its attacks' epsilons live).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.config import option, registry_names
from ganforge.data import load_split
from ganforge.data.images import to_uint8
from ganforge.data.sampler import EpochSampler
from ganforge.detect.degrade import random_degrade
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_json
from ganforge.io.rundir import check_out_folder
from ganforge.robustness.models import CLASSIFIERS, build_classifier, save_classifier
from ganforge.robustness.training import to_unit
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.train.device import pick_device
from ganforge.train.engine import Engine, Phase, Players, Recipe
from ganforge.train.optim import build_optimizer

DETECTOR_FILE = "detector.pt"
SUMMARY = "summary.json"
REAL, GENERATED = 0, 1
TRAIN_NOISE_SEED = 1_000  # samples for training use noise seeds from here; tests use others


@dataclass
class DetectorConfig:
    # The defaults are the measured recipe (benchmarks/README.md, issue 22).
    network: str = option(
        "convnet",
        "classifier network",
        choices=registry_names("ganforge.robustness.models", "CLASSIFIERS"),
    )
    images: int = option(30_000, "real images, and as many generated ones (split over the runs)")
    augment: bool = option(False, "train on copies blurred, resized and JPEG-encoded at random")
    epochs: float = option(25.0, "passes over the training images")
    batch_size: int = option(128, "images per batch")
    lr: float = option(1e-3, "Adam's peak rate (one cycle)")
    held_out: float = option(0.1, "share of the images kept aside to calibrate the threshold")
    dataset: str = option("mnist", "the real images", choices=("mnist", "digits"))
    seed: int = option(0, "random seed")

    def validate(self) -> None:
        if self.network not in CLASSIFIERS:
            CLASSIFIERS.get(self.network)
        if self.images < 20 or self.batch_size < 1:
            raise GanforgeError("images must be at least 20 and batch_size at least 1")
        if not all(math.isfinite(v) and v > 0 for v in (self.epochs, self.lr)):
            raise GanforgeError("epochs and lr must be positive finite numbers")
        if not 0 < self.held_out < 0.9:
            raise GanforgeError(f"held_out must be in (0, 0.9), got {self.held_out}")
        if not 0 <= self.seed < 2**31:
            raise GanforgeError(f"seed must be in [0, 2^31), got {self.seed}")


@dataclass
class DetectorResult:
    out: Path
    threshold: float
    held_out: dict[str, float]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        h = self.held_out
        return (
            f"detector trained in {self.seconds / 60:.1f} min: held-out accuracy "
            f"{100 * h['accuracy']:.2f}% at the calibrated threshold {self.threshold:.3f} "
            f"({100 * h['accuracy_at_half']:.2f}% at 0.5), average precision "
            f"{100 * h['average_precision']:.2f}%\nwrote {self.out / DETECTOR_FILE}; score files "
            f"with: ganforge detect --model {self.out} FILE..."
        )


def generated_images(run: str | Path, n: int, seed: int, device: str = "cpu") -> np.ndarray:
    """``n`` samples (uint8 NHWC) of a GAN run folder or checkpoint, noise seed ``seed``."""
    from ganforge.sampling import load_generator, sample

    gen = load_generator(run, device)
    chunks, done = [], 0
    with torch.no_grad():
        while done < n:  # in chunks: memory stays flat for large n
            m = min(2000, n - done)
            images, _ = sample(gen, m, seed + done)
            chunks.append(to_uint8(images).numpy())
            done += m
    return np.concatenate(chunks)


def real_images(dataset: str, split: str, n: int, seed: int, data_dir=None, download=True):
    """``n`` real images (uint8 NHWC), a seeded random subset of the split."""
    real = load_split(dataset, split, data_dir, download)
    if len(real) < n:
        raise GanforgeError(f"{dataset} {split} has {len(real)} images, fewer than {n}")
    order = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
    return real.images[order].permute(0, 2, 3, 1).contiguous().numpy()


def as_input(images: np.ndarray | Tensor) -> Tensor:
    """uint8 NHWC -> the network's float NCHW in [0, 1]."""
    return to_unit(torch.as_tensor(images).permute(0, 3, 1, 2))


@torch.no_grad()
def probabilities(model: nn.Module, images: np.ndarray | Tensor, batch: int = 1000) -> Tensor:
    """P(generated) of each uint8 NHWC image."""
    device = next(model.parameters()).device
    out = [
        F.softmax(model(as_input(images[i : i + batch]).to(device)), 1)[:, GENERATED].cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out) if out else torch.empty(0)


def scores(probs: Tensor, labels: Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy at ``threshold`` and average precision (generated = positive)."""
    from sklearn.metrics import average_precision_score

    y = labels.numpy()
    accuracy = float(((probs.numpy() >= threshold) == (y == GENERATED)).mean())
    both = len(np.unique(y)) == 2
    ap = float(average_precision_score(y == GENERATED, probs.numpy())) if both else math.nan
    return {"accuracy": accuracy, "average_precision": ap}


def calibrate(probs: Tensor, labels: Tensor) -> float:
    """The threshold with the best accuracy on these (held-out) scores: the midpoint
    between the two sorted scores where the accuracy peaks."""
    p, y = probs.double().numpy(), (labels.numpy() == GENERATED)
    order = np.argsort(p)
    p, y = p[order], y[order]
    # Threshold just above p[i]: images 0..i called real. Correct = reals at or below +
    # generated above.
    correct = np.cumsum(~y) + (y.sum() - np.cumsum(y))
    correct[:-1][p[:-1] == p[1:]] = -1  # a cut inside a run of equal scores is not a cut
    best = int(np.argmax(correct))
    if correct[best] <= y.sum():  # calling everything generated is as good
        return float(p[0] / 2)
    upper = p[best + 1] if best + 1 < len(p) else p[best] + 2e-6  # above every score
    return float((p[best] + upper) / 2)


class DetectorRecipe(Recipe):
    """One player, ``detector``, and one phase, "D main": cross-entropy on batches of the
    shuffled real and generated images."""

    kind = "detector"
    distributed = False

    def __init__(self, config: DetectorConfig, model: nn.Module, x: Tensor, y: Tensor) -> None:
        device = x.device
        self.config, self.x, self.y = config, x, y
        self.players = Players(device)
        opt = build_optimizer("adam", model.parameters(), device, lr=config.lr)
        self.players.add("detector", model, opt, "one-cycle")
        self.batches = EpochSampler(len(x), config.batch_size, config.seed, device)

    def phases(self) -> list[Phase]:
        return [Phase("D main", self.d_main)]

    def d_main(self, step: int) -> dict[str, Tensor]:
        i = self.batches.next()
        model = self.players["detector"].train()
        loss = F.cross_entropy(model(to_unit(self.x[i])), self.y[i])
        self.players.step("detector", loss)
        return {"loss": loss.detach()}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"loss": f"{stats.get('loss', math.nan):.3f}"}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["sampler"])


def train_detector(
    out: str | Path,
    runs: list[str | Path],
    config: DetectorConfig | None = None,
    data_dir: str | Path | None = None,
    device: str = "auto",
    download: bool = True,
    progress: bool = True,
) -> DetectorResult:
    """Train a detector of ``runs``' samples against real images into the folder ``out``.
    An interrupted folder with the same settings continues where it stopped."""
    config = config or DetectorConfig()
    config.validate()
    if not runs:
        raise GanforgeError("name at least one GAN run folder whose samples to detect")
    out = Path(out)
    check_out_folder(out, "detector")
    if (out / SUMMARY).exists():
        raise GanforgeError(f"{out} already holds a trained detector; choose another --out")
    sources = [str(Path(r)) for r in runs]
    settings = {**dataclasses.asdict(config), "runs": sources}
    state = None
    if (out / LAST).exists():
        state = load_checkpoint(out, kind="detector")
        if state.get("config") != settings:
            raise GanforgeError(
                f"{out} holds an interrupted detector with other settings; give the same "
                "settings to continue it, or choose another --out"
            )
    real = real_images(config.dataset, "train", config.images, config.seed, data_dir, download)
    shares = [
        config.images // len(runs) + (i < config.images % len(runs)) for i in range(len(runs))
    ]
    fakes = []
    for run, n in zip(runs, shares, strict=True):
        fake = generated_images(run, n, TRAIN_NOISE_SEED + config.seed)
        if fake.shape[1:] != real.shape[1:]:
            raise GanforgeError(
                f"{run} makes images of {fake.shape[1:]} (H, W, C); the real "
                f"{config.dataset} images are {real.shape[1:]}"
            )
        fakes.append(fake)
    images = np.concatenate([real, *fakes])
    labels = torch.cat([torch.full((len(real),), REAL), torch.full((len(images) - len(real),),
                                                                    GENERATED)])  # fmt: skip
    if config.augment:
        images = random_degrade(images, config.seed)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
    held = max(2, round(config.held_out * len(images)))
    held_i, fit_i = order[:held], order[held:]
    dev = pick_device(device)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(dev)  # uint8 NCHW
    labels = labels.to(dev)
    shape = tuple(x.shape[1:])
    torch.manual_seed(config.seed)
    model = build_classifier(config.network, shape, 2).to(dev)
    recipe = DetectorRecipe(config, model, x[fit_i], labels[fit_i])
    per_epoch = max(1, len(fit_i) // config.batch_size)
    total = max(1, math.ceil(config.epochs * per_epoch))
    engine = Engine(
        recipe, total, checkpoint=out / LAST, checkpoint_every=200, log_every=50,
        header={"config": settings}, progress=progress, desc="detector", seed=config.seed,
    )  # fmt: skip
    if state is not None:
        engine.load_state_dict(state, config.network)
    with engine.writing(out, "detector", config):
        engine.run_logged(out)
        model.eval()
        held_images = images[held_i.numpy()]
        probs, held_labels = probabilities(model, held_images), labels[held_i].cpu()
        threshold = calibrate(probs, held_labels)
        measured = scores(probs, held_labels, threshold)
        report = {
            "accuracy": measured["accuracy"],
            "average_precision": measured["average_precision"],
            "accuracy_at_half": scores(probs, held_labels)["accuracy"],
            "images": held,
        }
        info = {
            "network": config.network, "shape": list(shape), "num_classes": 2,
            "kind": "detector", "threshold": threshold, "runs": sources,
            "augment": config.augment, "held_out": report,
        }  # fmt: skip
        save_classifier(out / DETECTOR_FILE, model, info)
        summary = {"config": settings, "threshold": threshold, "held_out": report,
                   "train_seconds": round(engine.seconds, 1), "device": str(dev)}  # fmt: skip
        atomic_write_json(out / SUMMARY, summary)
    return DetectorResult(out, threshold, report, engine.seconds)
