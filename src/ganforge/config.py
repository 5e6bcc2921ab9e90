"""Run configuration: defaults, overlaid by a YAML file, overlaid by command-line flags.

The resolved configuration (network-family defaults filled in) is written to the run
folder as ``config.yaml`` for people and stored in every checkpoint, which is what resume and
sample read.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ganforge.atomic import atomic_write_bytes
from ganforge.errors import GanforgeError


@dataclass
class DataConfig:
    name: str = "mnist"  # mnist | folder | digits
    root: str | None = None  # data directory (mnist) or image folder (folder)
    image_size: int | None = None  # folder only; others have a native size
    channels: int | None = None  # folder only: 1 or 3
    limit: int | None = None  # keep only the first N images
    download: bool = True


@dataclass
class ModelConfig:
    network: str = "dcgan"
    z_dim: int | None = None  # None: the family's default
    width: int | None = None


@dataclass
class LossConfig:
    name: str = "nonsaturating"


@dataclass
class OptimConfig:
    optimizer: str | None = None  # adam | sgd; None: the family's default
    lr: float | None = None
    beta1: float | None = None  # Adam; None: the family's default
    beta2: float | None = None
    momentum: float | None = None  # SGD


@dataclass
class TrainConfig:
    steps: int = 1600  # generator steps
    epochs: float | None = None  # if set, overrides steps
    batch_size: int = 64
    k: int = 1  # discriminator steps per generator step
    seed: int = 0
    ema_decay: float = 0.999
    device: str = "auto"  # auto | cpu | cuda | mps | cuda:1 ...
    amp: str = "auto"  # auto | off | bf16 | fp16
    log_every: int = 50
    sample_every: int = 400
    checkpoint_every: int = 800
    num_samples: int = 100  # images in each sample grid
    eval_every: int | None = None  # MNIST: FID etc. every N steps; keeps checkpoints/best.pt
    eval_samples: int = 2000


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return merge(cls(), raw)

    def total_steps(self, dataset_size: int) -> int:
        if self.train.epochs is None:
            return self.train.steps
        per_epoch = dataset_size // self.train.batch_size
        return max(1, math.ceil(self.train.epochs * per_epoch / self.train.k))


def merge(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Return ``cfg`` with ``{"section": {"key": value}}`` overrides applied and type-checked."""
    if not isinstance(overrides, dict):
        raise GanforgeError(
            "a config must be a mapping of sections (data, model, loss, optim, train)"
        )
    sections = {}
    for f in dataclasses.fields(cfg):
        current = getattr(cfg, f.name)
        given = overrides.get(f.name) or {}
        if not isinstance(given, dict):
            raise GanforgeError(f"config section {f.name!r} must be a mapping")
        known = {g.name: g for g in dataclasses.fields(current)}
        unknown = set(given) - set(known)
        if unknown:
            raise GanforgeError(
                f"unknown key(s) in config section {f.name!r}: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(known)}"
            )
        values = {k: _check(f"{f.name}.{k}", v, known[k].type) for k, v in given.items()}
        if f.name == "train" and "steps" in values and "epochs" not in values:
            values["epochs"] = None  # a step count given later wins over epochs given earlier
        sections[f.name] = dataclasses.replace(current, **values)
    unknown = set(overrides) - set(sections)
    if unknown:
        raise GanforgeError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    return RunConfig(**sections)


def _check(key: str, value: Any, annotation: str) -> Any:
    """Check ``value`` against the field's annotation ("int", "float | None" ...)."""
    kinds = {part.strip() for part in str(annotation).split("|")}
    if value is None:
        if "None" not in kinds:
            raise GanforgeError(f"config {key} must not be empty")
        return value
    if "bool" in kinds:
        if not isinstance(value, bool):
            raise GanforgeError(f"config {key} must be true or false, got {value!r}")
    elif "float" in kinds or "int" in kinds:
        wrong = isinstance(value, bool) or not isinstance(value, int | float)
        if wrong or ("float" not in kinds and not isinstance(value, int)):
            kind = "a number" if "float" in kinds else "a whole number"
            raise GanforgeError(f"config {key} must be {kind}, got {value!r}")
        return float(value) if "float" in kinds else value
    elif "str" in kinds and not isinstance(value, str):
        raise GanforgeError(f"config {key} must be a string, got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise GanforgeError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise GanforgeError(f"config file {path} cannot be read ({err})") from None
    except yaml.YAMLError as err:
        raise GanforgeError(
            f"config file {path} is not valid YAML: {err}".splitlines()[0]
        ) from None
    return raw or {}


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the network family's defaults (z size, width, optimizer) and validate values."""
    from ganforge.losses import LOSSES
    from ganforge.nets import NETWORKS

    family = NETWORKS.get(cfg.model.network)
    LOSSES.get(cfg.loss.name)
    for key in ("z_dim", "width"):
        if getattr(cfg.model, key) is not None and getattr(cfg.model, key) < 1:
            raise GanforgeError(f"model.{key} must be at least 1, got {getattr(cfg.model, key)}")
    if cfg.data.limit is not None and cfg.data.limit < 1:
        raise GanforgeError(f"data.limit must be at least 1, got {cfg.data.limit}")
    data = cfg.data
    if data.root:  # absolute, so that a resume from another folder finds the data
        data = dataclasses.replace(data, root=str(Path(data.root).expanduser().resolve()))
    model = dataclasses.replace(
        cfg.model,
        z_dim=family.z_dim if cfg.model.z_dim is None else cfg.model.z_dim,
        width=family.width if cfg.model.width is None else cfg.model.width,
    )
    given = {k: v for k, v in dataclasses.asdict(cfg.optim).items() if v is not None}
    name = given.get("optimizer", family.optim["optimizer"])
    # The family's hyper-parameters apply only to the family's own optimizer.
    family_opt = family.optim if name == family.optim["optimizer"] else {}
    fallback = {"lr": {"adam": 2e-4, "sgd": 0.1}.get(name), "beta1": 0.5, "beta2": 0.999}
    optim = OptimConfig(**{**fallback, "momentum": 0.5, **family_opt, **given, "optimizer": name})
    if optim.optimizer not in ("adam", "sgd"):
        raise GanforgeError(f"unknown optimizer {optim.optimizer!r}; choose adam or sgd")
    t = cfg.train
    counts = ("steps", "batch_size", "k", "log_every", "sample_every", "checkpoint_every")
    if t.eval_every is not None and t.eval_every < 1:
        raise GanforgeError(f"train.eval_every must be at least 1, got {t.eval_every}")
    if t.eval_samples < 10:
        raise GanforgeError(f"train.eval_samples must be at least 10, got {t.eval_samples}")
    for name in (*counts, "num_samples"):
        if getattr(t, name) < 1:
            raise GanforgeError(f"train.{name} must be at least 1, got {getattr(t, name)}")
    if t.epochs is not None and not (math.isfinite(t.epochs) and t.epochs > 0):
        raise GanforgeError(f"train.epochs must be positive, got {t.epochs}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise GanforgeError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    if t.amp not in ("auto", "off", "bf16", "fp16"):
        raise GanforgeError(f"train.amp must be auto, off, bf16 or fp16, got {t.amp!r}")
    return dataclasses.replace(cfg, data=data, model=model, optim=optim)


def save_yaml(cfg: RunConfig, path: Path) -> None:
    atomic_write_bytes(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
