"""Configuration: one dataclass per recipe, defaults overlaid by YAML, overlaid by flags.

Every field carries its own command-line metadata (:func:`option`): help, flag name,
choices and whether a resumed run may change it. The CLI is generated from it, so a default
lives in exactly one place. The resolved configuration (network-family defaults filled in)
is written to the run folder as ``config.yaml`` and stored in every checkpoint, which is
what resume and sample read.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes

C = TypeVar("C")


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    choices: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    resumable: bool = False,
    cli: bool = True,
) -> Any:
    """A config field with its command-line description.

    ``flag`` defaults to the field name (``batch_size`` -> ``--batch-size``); a boolean whose
    default is true gets ``--no-NAME``. ``choices`` may be a callable (a registry's names,
    looked up when the parser is built). ``default_text`` replaces the shown default (for
    ``None``, which means "decided later"). ``resumable``: a resumed run may change it.
    """
    meta = {
        "help": help,
        "flag": flag,
        "choices": choices,
        "metavar": metavar,
        "default_text": default_text,
        "resumable": resumable,
        "cli": cli,
    }
    return field(default=default, metadata=meta)


def registry_names(module: str, name: str) -> Callable[[], list[str]]:
    def names() -> list[str]:
        import importlib

        return getattr(importlib.import_module(module), name).names()

    return names


NET = "the network's"


@dataclass
class DataConfig:
    name: str = option(
        "mnist", "dataset", flag="--dataset", choices=registry_names("ganforge.data", "DATASETS")
    )
    root: str | None = option(
        None,
        "MNIST IDX folder or image folder",
        flag="--data-dir",
        metavar="DIR",
        default_text="$GANFORGE_DATA, else ~/.cache/ganforge/mnist",
        resumable=True,
    )
    image_size: int | None = option(
        None, "folder datasets: square size", metavar="S", default_text="64"
    )
    channels: int | None = option(
        None, "folder datasets: 1 gray or 3 RGB", choices=(1, 3), default_text="3"
    )
    limit: int | None = option(None, "use only the first N images", metavar="N")
    download: bool = option(True, "never download missing MNIST files", resumable=True)


@dataclass
class ModelConfig:
    network: str = option(
        "dcgan-clusters", "network family", choices=registry_names("ganforge.nets", "NETWORKS")
    )
    z_dim: int | None = option(None, "noise size", metavar="D", default_text="the network's")
    width: int | None = option(None, "base channel/unit count", default_text="the network's")
    spectral_norm: bool = option(False, "spectral normalization on the discriminator's layers")
    clusters: int | None = option(
        None,
        "condition both networks on K k-means clusters of the training images, found "
        "without labels; samples draw clusters by their share of the data (0: off)",
        metavar="K",
        default_text=NET,
    )


@dataclass
class LossConfig:
    name: str | None = option(
        None,
        "adversarial loss",
        flag="--loss",
        choices=registry_names("ganforge.losses", "LOSSES"),
        default_text="the network's",
    )
    r1: float | None = option(
        None, "R1 penalty weight gamma on real images (0: off)", metavar="GAMMA", default_text=NET
    )
    r1_every: int | None = option(
        None, "apply R1 every N steps (lazy regularization)", metavar="N", default_text=NET
    )
    r2: float | None = option(
        None,
        "R2 penalty weight gamma on generated images (0: off)",
        metavar="GAMMA",
        default_text=NET,
    )
    r2_every: int | None = option(None, "apply R2 every N steps", metavar="N", default_text=NET)
    gp: float = option(0.0, "WGAN-GP gradient penalty weight lambda (0: off)", metavar="LAMBDA")
    gp_every: int = option(1, "apply the gradient penalty every N steps", metavar="N")
    augment: str = option(
        "",
        "DiffAugment policies for the discriminator's inputs, comma-separated: "
        "translation, cutout, color",
        metavar="POLICY",
        default_text="none",
    )


@dataclass
class OptimConfig:
    optimizer: str | None = option(
        None,
        "optimizer",
        choices=registry_names("ganforge.train.optim", "OPTIMIZERS"),
        default_text="the network's",
    )
    lr: float | None = option(None, "learning rate", default_text="the network's")
    beta1: float | None = option(None, "Adam's beta1", default_text="the network's")
    beta2: float | None = option(None, "Adam's beta2", default_text="the network's")
    momentum: float | None = option(None, "SGD momentum", default_text="0.5")
    weight_decay: float | None = option(None, "weight decay", default_text="0.01 for adamw, else 0")
    schedule: str | None = option(
        None,
        "learning-rate schedule",
        choices=registry_names("ganforge.train.optim", "SCHEDULES"),
        default_text=NET,
    )


@dataclass
class TrainConfig:
    steps: int | None = option(None, "generator steps", resumable=True, default_text=NET)
    epochs: float | None = option(
        None, "train this many passes over the data instead of --steps", resumable=True
    )
    batch_size: int | None = option(None, "images per batch", metavar="B", default_text=NET)
    k: int | None = option(
        None, "discriminator steps per generator step", default_text="the network's, else 1"
    )
    seed: int = option(0, "random seed")
    ema_decay: float | None = option(
        None, "generator weight average", metavar="DECAY", default_text=NET
    )
    device: str = option("auto", "auto, cpu, cuda, mps, cuda:1 ...", resumable=True)
    amp: str = option(
        "auto", "mixed precision", choices=("auto", "off", "bf16", "fp16"), resumable=True
    )
    log_every: int = option(50, "log statistics every N steps", metavar="N", resumable=True)
    sample_every: int = option(
        400, "write a sample grid every N steps", metavar="N", resumable=True
    )
    checkpoint_every: int = option(800, "checkpoint every N steps", metavar="N", resumable=True)
    num_samples: int = option(100, "images in each sample grid", metavar="N")
    eval_every: int | None = option(
        None,
        "MNIST: log FID, KID, precision/recall, coverage every N steps; keep best.pt by FID",
        metavar="N",
        default_text="never",
        resumable=True,
    )
    eval_samples: int = option(2000, "samples per evaluation", metavar="N", resumable=True)


@dataclass
class PrivacyConfig:
    enabled: bool = option(
        False,
        "train the discriminator with DP-SGD (per-image clipping, Gaussian noise, Poisson "
        "sampling; Opacus) and stop at the privacy budget, spent over --steps x --k "
        "discriminator steps; the generator never sees data",
        flag="--private",
    )
    epsilon: float = option(10.0, "the privacy budget's epsilon", metavar="EPS")
    delta: float = option(1e-5, "the privacy budget's delta (below 1/n)", metavar="DELTA")
    accountant: str = option(
        "rdp", "privacy accountant (prv: tighter, slower to plan)", choices=("rdp", "prv")
    )
    clip: float = option(1.0, "per-image gradient clipping norm C", metavar="C")
    adaptive: float | None = option(
        None,
        "raise the discriminator steps per generator step (--k up the ladder 1, 2, 5, 10, "
        "20, 50, 100 ...) when the discriminator's moving accuracy on generated images "
        "falls to ACC (Bie et al. use 0.6 at epsilon 10)",
        metavar="ACC",
        default_text="fixed --k",
    )


@dataclass
class RunConfig:
    """The GAN recipe's configuration: its sections are the sections of config.yaml."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        return merge(cls(), raw)

    def total_steps(self, dataset_size: int) -> int:
        if self.train.epochs is None:
            return self.train.steps
        per_epoch = dataset_size // self.train.batch_size
        return max(1, math.ceil(self.train.epochs * per_epoch / self.train.k))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain YAML-able values (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(cfg))


def merge(cfg: C, overrides: dict[str, Any], _where: str = "") -> C:
    """Return ``cfg`` (a config dataclass, flat or of sections) with ``overrides`` applied and
    type-checked: ``{"section": {"key": value}}`` or ``{"key": value}``."""
    if not isinstance(overrides, dict):
        if _where:
            raise GanforgeError(f"config section {_where[:-1]!r} must be a mapping")
        names = ", ".join(f.name for f in dataclasses.fields(cfg))
        raise GanforgeError(f"a config must be a mapping of sections or keys ({names})")
    known = {f.name: f for f in dataclasses.fields(cfg)}
    unknown = set(overrides) - set(known)
    if unknown:
        what = f"key(s) in config section {_where[:-1]!r}" if _where else "config section(s)"
        if not _where and not any(dataclasses.is_dataclass(getattr(cfg, k)) for k in known):
            what = "config key(s)"
        raise GanforgeError(
            f"unknown {what}: {', '.join(sorted(map(str, unknown)))}; known: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    for name, given in overrides.items():
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current):
            values[name] = merge(current, given or {}, f"{_where}{name}.")
        else:
            values[name] = _check(f"{_where}{name}", given, known[name].type)
    if "steps" in values and "epochs" in known and "epochs" not in values:
        values["epochs"] = None  # a step count given later wins over epochs given earlier
    return dataclasses.replace(cfg, **values)


def _check(key: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against the field's annotation ("int", "float | None" ...)."""
    text = str(annotation)
    kinds = {part.strip() for part in text.split("|")}
    if value is None:
        if "None" not in kinds:
            raise GanforgeError(f"config {key} must not be empty")
        return value
    if text.startswith("tuple[int"):
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise GanforgeError(f"config {key} must be a list of whole numbers, got {value!r}")
        return tuple(value)
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


def resumable_keys(cfg_type: type) -> set[str]:
    """``section.key`` (or ``key``) of every field a resumed run may change."""
    out = set()
    for f in dataclasses.fields(cfg_type):
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out |= {f"{f.name}.{k}" for k in resumable_keys(f.default_factory)}
        elif f.metadata.get("resumable"):
            out.add(f.name)
    return out


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


def _positive(name: str, value: float | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    ok = math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "0 or more" if allow_zero else "positive"
        raise GanforgeError(f"{name} must be {bound}, got {value}")


# What a field left empty becomes when the network family does not say otherwise: the
# recipe DCGAN and the 2014 networks were tuned with (benchmarks/README.md).
RECIPE_FALLBACK: dict[str, dict[str, Any]] = {
    "model": {"clusters": 0},
    "loss": {"name": "nonsaturating", "r1": 0.0, "r1_every": 1, "r2": 0.0, "r2_every": 1},
    "optim": {"schedule": "constant"},
    "train": {"steps": 1600, "batch_size": 64, "ema_decay": 0.999, "k": 1},
}


def _fill(section: Any, name: str, family_recipe: dict[str, dict[str, Any]]) -> Any:
    """``section`` with its empty fields set from the family's recipe, else the fallback."""
    values = {**RECIPE_FALLBACK[name], **family_recipe.get(name, {})}
    empty = {k: v for k, v in values.items() if getattr(section, k) is None}
    return dataclasses.replace(section, **empty)


def resolve(cfg: RunConfig) -> RunConfig:
    """Fill the network family's defaults (z size, width, loss, penalties, optimizer,
    schedule, steps, batch size, weight average) and validate values."""
    from ganforge.losses import LOSSES, DiffAugment
    from ganforge.nets import NETWORKS, check_clusters
    from ganforge.train.optim import OPTIMIZERS, SCHEDULES

    family = NETWORKS.get(cfg.model.network)
    for key in ("z_dim", "width"):
        if getattr(cfg.model, key) is not None and getattr(cfg.model, key) < 1:
            raise GanforgeError(f"model.{key} must be at least 1, got {getattr(cfg.model, key)}")
    if cfg.data.limit is not None and cfg.data.limit < 1:
        raise GanforgeError(f"data.limit must be at least 1, got {cfg.data.limit}")
    data = cfg.data
    if data.root:  # absolute, so that a resume from another folder finds the data
        data = dataclasses.replace(data, root=str(Path(data.root).expanduser().resolve()))
    model = dataclasses.replace(
        _fill(cfg.model, "model", family.recipe),
        z_dim=family.z_dim if cfg.model.z_dim is None else cfg.model.z_dim,
        width=family.width if cfg.model.width is None else cfg.model.width,
    )
    check_clusters(model.network, model.clusters, "model.clusters")
    cfg = dataclasses.replace(
        cfg,
        loss=_fill(cfg.loss, "loss", family.recipe),
        optim=_fill(cfg.optim, "optim", family.recipe),
        train=_fill(cfg.train, "train", family.recipe),
    )
    loss = cfg.loss
    LOSSES.get(loss.name)
    for reg in ("r1", "r2", "gp"):
        _positive(f"loss.{reg}", getattr(loss, reg), allow_zero=True)
        if getattr(loss, f"{reg}_every") < 1:
            raise GanforgeError(f"loss.{reg}_every must be at least 1")
    DiffAugment(loss.augment)  # an unknown policy is refused here, before any output
    given = {k: v for k, v in dataclasses.asdict(cfg.optim).items() if v is not None}
    name = given.get("optimizer", family.optim["optimizer"])
    OPTIMIZERS.get(name)
    SCHEDULES.get(cfg.optim.schedule)
    # The family's hyper-parameters apply only to the family's own optimizer.
    family_opt = family.optim if name == family.optim["optimizer"] else {}
    fallback = {
        "lr": {"sgd": 0.1}.get(name, 2e-4),
        "beta1": 0.5,
        "beta2": 0.999,
        "momentum": 0.5,
        "weight_decay": {"adamw": 0.01}.get(name, 0.0),
    }
    optim = OptimConfig(**{**fallback, **family_opt, **given, "optimizer": name})
    _positive("optim.lr", optim.lr)
    _positive("optim.weight_decay", optim.weight_decay, allow_zero=True)
    _positive("optim.momentum", optim.momentum, allow_zero=True)
    for beta in ("beta1", "beta2"):
        value = getattr(optim, beta)
        if not 0.0 <= value < 1.0:
            raise GanforgeError(f"optim.{beta} must be in [0, 1), got {value}")
    t = cfg.train
    counts = ("steps", "batch_size", "k", "log_every", "sample_every", "checkpoint_every")
    if t.eval_every is not None and t.eval_every < 1:
        raise GanforgeError(f"train.eval_every must be at least 1, got {t.eval_every}")
    if t.eval_samples < 10:
        raise GanforgeError(f"train.eval_samples must be at least 10, got {t.eval_samples}")
    for key in (*counts, "num_samples"):
        if getattr(t, key) < 1:
            raise GanforgeError(f"train.{key} must be at least 1, got {getattr(t, key)}")
    if t.epochs is not None and not (math.isfinite(t.epochs) and t.epochs > 0):
        raise GanforgeError(f"train.epochs must be positive, got {t.epochs}")
    if not 0 <= t.seed < 2**31:  # the sampler derives per-epoch seeds from it
        raise GanforgeError(f"train.seed must be in [0, 2^31), got {t.seed}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise GanforgeError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    if t.amp not in ("auto", "off", "bf16", "fp16"):
        raise GanforgeError(f"train.amp must be auto, off, bf16 or fp16, got {t.amp!r}")
    p = cfg.privacy  # checked with or without --private: a bad value is a mistake either way
    if not (math.isfinite(p.epsilon) and p.epsilon > 0):
        raise GanforgeError(f"--epsilon must be a positive number, got {p.epsilon:g}")
    if not 0 < p.delta < 1:  # below 1/n: checked when the data's size is known
        raise GanforgeError(f"--delta must be in (0, 1), got {p.delta:g}")
    _positive("privacy.clip", p.clip)
    if p.adaptive is not None and not 0 < p.adaptive < 1:
        raise GanforgeError(f"--adaptive must be an accuracy in (0, 1), got {p.adaptive:g}")
    if p.enabled:
        _check_private(cfg, family)
    return dataclasses.replace(cfg, data=data, model=model, loss=loss, optim=optim)


def _check_private(cfg: RunConfig, family: Any) -> None:
    """What DP-SGD on the discriminator can train: a class-conditional generator (the
    synthetic data is labelled), a loss that is a sum over images, no gradient penalties."""
    from ganforge.losses import LOSSES

    net = cfg.model.network
    if not family.conditional:
        raise GanforgeError(
            f"--private trains a class-conditional generator (labelled synthetic data); "
            f"{net!r} is not one: pass --network dcgan-cond-dp"
        )
    if not LOSSES.get(cfg.loss.name).separable:
        raise GanforgeError(
            f"--private needs a loss that is a sum over images; {cfg.loss.name!r} pairs them "
            "(use nonsaturating, hinge, wasserstein or least-squares)"
        )
    if family.init_from_data is not None:
        raise GanforgeError(
            f"--private cannot train {net!r}: it starts its generator from the training "
            "images' mean, which the privacy guarantee does not cover; use dcgan-cond-dp"
        )
    if cfg.model.spectral_norm:
        raise GanforgeError("--private cannot train with --spectral-norm (Opacus has no "
                            "per-image gradients through it)")  # fmt: skip
    on = [r for r in ("r1", "r2", "gp") if getattr(cfg.loss, r) > 0]
    if on:
        raise GanforgeError(
            f"--private cannot train with gradient penalties ({', '.join(on)}): DP-SGD's "
            "per-image gradients are not differentiated twice; set them to 0"
        )


def save_yaml(cfg: Any, path: Path) -> None:
    atomic_write_bytes(path, yaml.safe_dump(to_dict(cfg), sort_keys=False).encode())
