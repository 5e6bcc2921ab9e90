"""Image classifiers in the scikit-learn style: ``fit``, ``predict``, ``predict_proba``.

:class:`SemiSupervisedGAN` learns from a few labelled images and many unlabelled ones by
playing the semi-supervised game (``losses.py``); :class:`SupervisedClassifier` is the same
classifier trained on the labelled images alone, the baseline it must beat.

Inputs ``X`` are image tensors (or NumPy arrays) of shape (N, C, H, W), (N, H, W) or (N, D):
``float`` in [-1, 1] (ganforge's convention between data and networks) or ``uint8`` in
[0, 255]. Labels ``y`` are integers; any K distinct values are mapped to classes 0..K-1 and
``predict`` gives the original values back. Internally images are vectors in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import GanforgeError, Interrupted
from ganforge.io.safe import load_safely, save_state
from ganforge.semisupervised.nets import (
    CLASSIFIER_UNITS,
    GENERATOR_UNITS,
    Classifier,
    Generator,
)
from ganforge.semisupervised.recipes import SemiSupervisedRecipe, SupervisedRecipe
from ganforge.train import dist
from ganforge.train.checkpoint import load_checkpoint
from ganforge.train.device import pick_device
from ganforge.train.engine import Engine, Recipe

FORMAT = "ganforge-classifier-1"

# The semi-supervised GAN's recipe. experiment.Settings starts from these too, so the
# protocol's defaults and the estimator's cannot drift apart. 25 epochs of batch 50 are
# 30,000 updates: 12.5-13.9 minutes a seed on 2 idle CPU cores (25.5 ms an update); the
# same machine has run 1.46 times slower under load (benchmarks/README.md).
GAN_EPOCHS = 25
GAN_BATCH_SIZE = 50
GAN_LR = 3e-3
# The version of the training step itself, for what the settings above cannot say: 1 ran a
# fresh real batch for feature matching, 2 reuses the classifier step's features. A run
# folder records it, so results of different steps are never mixed under one table.
RECIPE = 2
# The labels-only baseline: the same classifier and rate, trained on labels alone.
BASELINE_UPDATES = 3000
BASELINE_BATCH_SIZE = 100
# A fit given a checkpoint file writes it this often (about 25 s of a GAN fit on 2 CPU
# cores), on Ctrl-C and at the end; the same fit continues from it exactly.
CHECKPOINT_EVERY = 1000


def as_vectors(X: Tensor | np.ndarray, what: str = "X") -> Tensor:
    """Images in either accepted form -> float32 (N, D) in [0, 1] on the CPU."""
    x = torch.as_tensor(X)
    if x.dim() < 2 or len(x) == 0:
        raise GanforgeError(f"{what} must hold images, shape (N, C, H, W), (N, H, W) or (N, D)")
    if x.dtype == torch.uint8:
        return x.reshape(len(x), -1).float().div_(255.0)
    if not x.is_floating_point():
        raise GanforgeError(f"{what} must be uint8 in [0, 255] or float in [-1, 1], got {x.dtype}")
    x = x.reshape(len(x), -1).float()
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1.001 or hi > 1.001:
        raise GanforgeError(
            f"float images must be in [-1, 1] (ganforge's convention), {what} spans "
            f"[{lo:.3g}, {hi:.3g}]; pass uint8 images or rescale"
        )
    return (x + 1.0) * 0.5  # not in place: x may share memory with the caller's array


class _ImageClassifier:
    """Shared: label mapping, batched prediction with the averaged classifier, save/load."""

    kind = ""

    def __init__(self, device: str = "auto", seed: int = 0, progress: bool = True) -> None:
        self.device, self.seed, self.progress = device, seed, progress
        self.classifier_: Classifier | None = None
        self.classes_: Tensor | None = None
        self.input_shape_: tuple[int, ...] | None = None  # (C, H, W) when fitted on images
        self.history_: list[dict[str, float]] = []

    # -- fitting helpers --------------------------------------------------------------------
    def _labels(self, y: Tensor | np.ndarray, n: int) -> Tensor:
        y = torch.as_tensor(y).cpu()
        if y.dim() != 1 or len(y) != n:
            raise GanforgeError(
                f"y must hold one label per labelled image ({n}), got {tuple(y.shape)}"
            )
        if y.is_floating_point() or y.dtype == torch.bool:
            raise GanforgeError(f"labels must be integers, got {y.dtype}")
        self.classes_, index = torch.unique(y.long(), return_inverse=True)
        if len(self.classes_) < 2:
            raise GanforgeError("the labelled images must cover at least 2 classes")
        return index

    def _shape(self, X: Tensor | np.ndarray) -> None:
        shape = tuple(X.shape[1:])
        self.input_shape_ = {3: shape, 2: (1, *shape)}.get(len(shape))

    def _new_classifier(self, d_in: int, device: torch.device) -> Classifier:
        torch.manual_seed(self.seed)
        return Classifier(d_in, len(self.classes_), self.units).to(device)

    def _train(
        self,
        recipe: Recipe,
        total: int,
        checkpoint: str | Path | None,
        desc: str,
        log_every: int | None = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        """Train ``recipe`` on the engine; with ``checkpoint``, continue from that file if it
        exists (it must hold a fit with the same settings) and keep it up to date."""
        settings = {**self._settings(), "total": total}
        engine = Engine(
            recipe,
            total,
            checkpoint=checkpoint,
            checkpoint_every=CHECKPOINT_EVERY if checkpoint else None,
            log_every=log_every or total,
            on_log=on_log,
            header={"settings": settings},
            progress=self.progress,
            desc=desc,
            seed=self.seed,
        )
        if checkpoint is not None and Path(checkpoint).is_file():
            state = load_checkpoint(checkpoint, kind=recipe.kind)
            if state.get("settings") != settings:
                raise GanforgeError(
                    f"{checkpoint} holds a fit with other settings ({state.get('settings')}); "
                    "delete it to start again"
                )
            engine.load_state_dict(state)
        result = engine.run()
        self.fit_seconds_ = engine.seconds  # training time, over resumes too
        if result.interrupted:
            where = f"saved to {checkpoint}" if checkpoint else "not saved (no checkpoint file)"
            raise Interrupted(
                f"interrupted at update {result.steps} of {total}; the checkpoint is {where}. "
                "The same command continues from there"
            )

    def _settings(self) -> dict[str, Any]:
        """What a checkpoint of this fit must agree on to be continued."""
        keys = ("units", "generator_units", "epochs", "updates", "batch_size", "lr",
                "unsupervised_weight", "ema_decay", "z_dim", "seed")  # fmt: skip
        out = {k: getattr(self, k) for k in keys if hasattr(self, k)}
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        return {**out, "classes": self.classes_.tolist(), "kind": self.kind}

    def _check_fitted(self) -> Classifier:
        if self.classifier_ is None:
            raise GanforgeError(f"this {type(self).__name__} is not fitted yet; call fit() first")
        return self.classifier_

    # -- prediction -------------------------------------------------------------------------
    @torch.inference_mode()
    def predict_proba(self, X: Tensor | np.ndarray, batch_size: int = 1000) -> Tensor:
        """Class probabilities (N, K), columns in the order of ``classes_``."""
        net = self._check_fitted()
        x = as_vectors(X)
        if x.shape[1] != net.d_in:
            raise GanforgeError(
                f"this classifier was fitted on images of {net.d_in} values, got {x.shape[1]}"
            )
        device = next(net.parameters()).device
        out = [
            torch.softmax(net(x[i : i + batch_size].to(device))[0].float(), 1).cpu()
            for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out)

    def predict(self, X: Tensor | np.ndarray) -> Tensor:
        """The most probable label of each image, in the labels' own values."""
        proba = self.predict_proba(X)
        assert self.classes_ is not None  # set with the classifier by fit() and load
        return self.classes_[proba.argmax(1)]

    def score(self, X: Tensor | np.ndarray, y: Tensor | np.ndarray) -> float:
        """Accuracy on ``(X, y)``."""
        return float((self.predict(X) == torch.as_tensor(y).cpu().long()).float().mean())

    # -- saving -----------------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        return {}

    def save(self, path: str | Path) -> None:
        """Write the fitted classifier to ``path`` atomically (a ``torch.save`` of tensors)."""
        net = self._check_fitted()
        state = {
            "format": FORMAT,
            "kind": self.kind,
            "d_in": net.d_in,
            "num_classes": net.num_classes,
            "units": list(net.units),
            "input_shape": list(self.input_shape_) if self.input_shape_ else None,
            "classes": self.classes_,
            "classifier": {k: v.cpu() for k, v in net.state_dict().items()},
            "history": self.history_,
            **self._extra_state(),
        }
        save_state(path, state)


class SupervisedClassifier(_ImageClassifier):
    """The semi-supervised game's classifier trained with cross-entropy on labels alone."""

    kind = "supervised"

    def __init__(
        self,
        updates: int = BASELINE_UPDATES,
        batch_size: int = BASELINE_BATCH_SIZE,
        lr: float = GAN_LR,
        ema_decay: float = 0.999,
        units: tuple[int, ...] = CLASSIFIER_UNITS,
        device: str = "auto",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__(device, seed, progress)
        self.units = tuple(units)
        self.updates, self.batch_size, self.lr, self.ema_decay = updates, batch_size, lr, ema_decay

    def fit(
        self,
        X: Tensor | np.ndarray,
        y: Tensor | np.ndarray,
        checkpoint: str | Path | None = None,
    ) -> SupervisedClassifier:
        """Fit on ``(X, y)``. With ``checkpoint`` (a file path), Ctrl-C saves there and the
        same call continues exactly where it stopped."""
        if self.updates < 1 or self.batch_size < 1:
            raise GanforgeError("updates and batch_size must be at least 1")
        x = as_vectors(X)
        target = self._labels(y, len(x))
        self._shape(X)
        device = pick_device(self.device)
        dist.setup(device)  # under torchrun: each process fits its share of every batch
        x, target = x.to(device), target.to(device)
        net = self._new_classifier(x.shape[1], device)
        recipe = SupervisedRecipe(
            net, x, target, self.batch_size, self.lr, self.ema_decay, self.seed
        )
        self._train(recipe, self.updates, checkpoint, "supervised")
        self.classifier_ = recipe.players.emas["classifier"].model
        return self


class SemiSupervisedGAN(_ImageClassifier):
    """Salimans et al. (2016): a K-class classifier that is also the discriminator, and a
    generator trained by feature matching. ``epochs`` count passes over the unlabelled
    images; the labelled ones are cycled as often as needed. Test-time weights are an
    exponential average of the classifier's (``ema_decay``)."""

    kind = "semisupervised-gan"

    def __init__(
        self,
        epochs: float = GAN_EPOCHS,
        batch_size: int = GAN_BATCH_SIZE,
        lr: float = GAN_LR,
        unsupervised_weight: float = 1.0,
        ema_decay: float = 0.999,
        z_dim: int = 100,
        units: tuple[int, ...] = CLASSIFIER_UNITS,
        generator_units: tuple[int, ...] = GENERATOR_UNITS,
        device: str = "auto",
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__(device, seed, progress)
        self.units, self.generator_units = tuple(units), tuple(generator_units)
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.unsupervised_weight, self.ema_decay, self.z_dim = unsupervised_weight, ema_decay, z_dim
        self.generator_: Generator | None = None

    def fit(
        self,
        X_labelled: Tensor | np.ndarray,
        y: Tensor | np.ndarray,
        X_unlabelled: Tensor | np.ndarray | None = None,
        log_every: int = 100,
        callback: Callable[[int, Classifier], None] | None = None,
        checkpoint: str | Path | None = None,
    ) -> SemiSupervisedGAN:
        """Fit on labelled images ``(X_labelled, y)`` and unlabelled ``X_unlabelled`` (the
        labelled images are used as unlabelled too when it is None). Every ``log_every``
        updates the losses go to ``history_`` and ``callback(update, averaged_classifier)``
        is called, to watch test error during training for example. With ``checkpoint`` (a
        file path), Ctrl-C saves there and the same call continues exactly where it
        stopped."""
        xl = as_vectors(X_labelled, "X_labelled")
        target = self._labels(y, len(xl))
        self._shape(X_labelled)
        xu = xl if X_unlabelled is None else as_vectors(X_unlabelled, "X_unlabelled")
        if xu.shape[1] != xl.shape[1]:
            raise GanforgeError(
                f"labelled images have {xl.shape[1]} values each, unlabelled {xu.shape[1]}"
            )
        if self.epochs <= 0 or self.batch_size < 2 or log_every < 1:
            raise GanforgeError("epochs must be > 0, batch_size at least 2, log_every at least 1")
        device = pick_device(self.device)
        dist.setup(device)  # under torchrun: each process fits its share of every batch
        xl, target, xu = xl.to(device), target.to(device), xu.to(device)
        d = self._new_classifier(xl.shape[1], device)
        g = Generator(xl.shape[1], self.z_dim, self.generator_units).to(device)
        recipe = SemiSupervisedRecipe(
            d, g, xl, target, xu, self.batch_size, self.lr, self.unsupervised_weight,
            self.ema_decay, self.seed,
        )  # fmt: skip
        total = max(1, math.ceil(self.epochs * len(xu) / self.batch_size))
        averaged = recipe.players.emas["classifier"].model

        def on_log(update: int, stats: dict[str, float]) -> None:
            recipe.history.append({"update": update, **stats})
            if callback is not None:
                callback(update, averaged)

        self._train(recipe, total, checkpoint, "semi-supervised GAN", log_every, on_log)
        self.history_ = list(recipe.history)
        self.classifier_, self.generator_ = averaged, g.eval()
        return self

    @torch.inference_mode()
    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` generated images as float (N, D) in [-1, 1], ganforge's convention (the
        generator is a by-product: feature matching makes it good for the classifier, not for
        the eye)."""
        if self.generator_ is None:
            raise GanforgeError("this SemiSupervisedGAN is not fitted yet; call fit() first")
        device = next(self.generator_.parameters()).device
        g = torch.Generator().manual_seed(seed)
        z = torch.rand(n, self.generator_.z_dim, generator=g).to(device)
        return self.generator_(z).cpu().mul(2).sub(1)

    def _extra_state(self) -> dict[str, Any]:
        if self.generator_ is None:
            return {}
        return {
            "generator": {k: v.cpu() for k, v in self.generator_.state_dict().items()},
            "z_dim": self.generator_.z_dim,
            "generator_units": list(self.generator_.units),
        }


def load_classifier(path: str | Path) -> _ImageClassifier:
    """A classifier saved by ``save()``: its predict/predict_proba work as after fit."""
    path = Path(path)
    if not path.is_file():
        raise GanforgeError(f"classifier file {path} does not exist")
    state = load_safely(path, FORMAT, "ganforge classifier")
    kinds = {
        SemiSupervisedGAN.kind: SemiSupervisedGAN,
        SupervisedClassifier.kind: SupervisedClassifier,
    }
    try:
        units = tuple(state["units"])
        model = kinds[state["kind"]](units=units, progress=False)
        net = Classifier(state["d_in"], state["num_classes"], units)
        net.load_state_dict(state["classifier"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise GanforgeError(
            f"{path} is an incomplete or unknown ganforge classifier ({err})"
        ) from None
    model.classifier_ = net.eval().requires_grad_(False)
    model.classes_ = state["classes"]
    model.history_ = state.get("history", [])
    shape = state.get("input_shape")
    model.input_shape_ = tuple(shape) if shape else None
    if isinstance(model, SemiSupervisedGAN) and "generator" in state:
        g = Generator(state["d_in"], state["z_dim"], tuple(state["generator_units"]))
        g.load_state_dict(state["generator"])
        model.generator_ = g.eval()
    return model
