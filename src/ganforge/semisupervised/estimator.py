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
from tqdm import tqdm

from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_save
from ganforge.io.safe import load_safely
from ganforge.semisupervised.losses import classifier_loss, feature_matching
from ganforge.semisupervised.nets import (
    CLASSIFIER_UNITS,
    GENERATOR_UNITS,
    Classifier,
    Generator,
)
from ganforge.train.device import pick_device
from ganforge.train.ema import EMA

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

    def _start(self, net: Classifier, init_batch: Tensor) -> tuple[EMA, torch.optim.Optimizer]:
        """Start ``net`` from up to 500 images of ``init_batch``; return its average and its
        optimizer. One recipe, so the baseline is the same classifier the GAN trains."""
        device = init_batch.device
        net.data_init(init_batch[torch.randperm(len(init_batch), device=device)[:500]])
        ema = EMA(net, self.ema_decay)
        return ema, _adam(net, self.lr)

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
        atomic_save(path, lambda tmp: torch.save(state, tmp))


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

    def fit(self, X: Tensor | np.ndarray, y: Tensor | np.ndarray) -> SupervisedClassifier:
        if self.updates < 1 or self.batch_size < 1:
            raise GanforgeError("updates and batch_size must be at least 1")
        x = as_vectors(X)
        target = self._labels(y, len(x))
        self._shape(X)
        device = pick_device(self.device)
        x, target = x.to(device), target.to(device)
        net = self._new_classifier(x.shape[1], device)
        ema, opt = self._start(net, x)
        x, target = _tile(x, target, self.batch_size)
        batches = EpochSampler(len(x), self.batch_size, self.seed, device)
        for step in tqdm(range(self.updates), desc="supervised", disable=not self.progress):
            _set_lr(opt, self.lr, step, self.updates)
            i = batches.next()
            loss = torch.nn.functional.cross_entropy(net(x[i])[0], target[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update(net, step + 1)
        self.classifier_ = ema.model
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
    ) -> SemiSupervisedGAN:
        """Fit on labelled images ``(X_labelled, y)`` and unlabelled ``X_unlabelled`` (the
        labelled images are used as unlabelled too when it is None). Every ``log_every``
        updates the losses go to ``history_`` and ``callback(update, averaged_classifier)``
        is called, to watch test error during training for example."""
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
        self.history_ = []
        device = pick_device(self.device)
        xl, target, xu = xl.to(device), target.to(device), xu.to(device)
        d = self._new_classifier(xl.shape[1], device)
        g = Generator(xl.shape[1], self.z_dim, self.generator_units).to(device)
        ema, opt_d = self._start(d, xu)
        opt_g = _adam(g, self.lr)
        bs = self.batch_size
        total = max(1, math.ceil(self.epochs * len(xu) / bs))
        xl, target = _tile(xl, target, bs)
        xu = _tile(xu, None, bs)[0]
        labelled, unlabelled = (
            EpochSampler(len(xl), bs, self.seed, device),
            EpochSampler(len(xu), bs, self.seed + 1, device),
        )
        acc = torch.zeros(4, device=device)
        bar = tqdm(range(total), desc="semi-supervised GAN", disable=not self.progress)
        for step in bar:
            _set_lr(opt_d, self.lr, step, total)
            _set_lr(opt_g, self.lr, step, total)
            # The classifier's step: labelled, unlabelled and generated images in one batch.
            il, iu = labelled.next(), unlabelled.next()
            fake = g(g.noise(bs, device))
            d.requires_grad_(True)
            logits, feats = d(torch.cat([xl[il], xu[iu], fake.detach()]))
            terms = classifier_loss(
                logits[:bs],
                target[il],
                logits[bs : 2 * bs],
                logits[2 * bs :],
                self.unsupervised_weight,
            )
            opt_d.zero_grad(set_to_none=True)
            terms.loss.backward()
            opt_d.step()
            # The generator's step: match the mean features the classifier's step saw on the
            # unlabelled batch. The paper's code runs a fresh real batch through the updated
            # classifier; reusing these saves that pass (28.5 -> 25.5 ms an update on 2 CPU
            # threads) and gave no worse errors (benchmarks/README.md).
            d.requires_grad_(False)
            real_feats = feats[bs : 2 * bs].detach()
            loss_g = feature_matching(real_feats, d(fake)[1])
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            ema.update(d, step + 1)
            with torch.no_grad():
                train_err = (logits[:bs].argmax(1) != target[il]).float().mean()
                acc += torch.stack([terms.supervised, terms.unsupervised, loss_g, train_err])
            if (step + 1) % log_every == 0 or step + 1 == total:
                n = (step % log_every) + 1
                stats = dict(
                    zip(
                        ("supervised", "unsupervised", "feature_matching", "labelled_error"),
                        (acc / n).tolist(),
                        strict=True,
                    )
                )
                acc.zero_()
                self.history_.append({"update": step + 1, **stats})
                bar.set_postfix(
                    sup=f"{stats['supervised']:.3f}", fm=f"{stats['feature_matching']:.3f}"
                )
                if not all(math.isfinite(v) for v in stats.values()):
                    raise GanforgeError(f"training diverged by update {step + 1}; try a lower lr")
                if callback is not None:
                    callback(step + 1, ema.model)
        self.classifier_, self.generator_ = ema.model, g.eval()
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


def _adam(net: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam as the paper's code has it: beta1 0.5 and 1e-8 added *inside* the square root,
    which is PyTorch's eps = 1e-4 outside it. The larger eps damps steps of parameters whose
    gradients are tiny; with PyTorch's default 1e-8 the generator's output layer saturates
    after 3-6 epochs on MNIST and the game breaks (feature matching jumps from 2 to 30-90).
    The fused kernel: both players' steps took 11 ms of a 70 ms update on a CPU, now 4.5."""
    fused = next(net.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-4, fused=fused)


def _tile(x: Tensor, y: Tensor | None, batch_size: int) -> tuple[Tensor, Tensor | None]:
    """Repeat a set smaller than a batch (a few labels) until it fills one, as the paper
    repeats its labelled images to the length of the unlabelled ones."""
    if len(x) >= batch_size:
        return x, y
    reps = -(-batch_size // len(x))
    return x.repeat(reps, 1), None if y is None else y.repeat(reps)


def _set_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
    """Constant rate for the first half, then linearly down to zero."""
    frac = min(1.0, max(0.0, 2.0 * (1.0 - step / total)))
    for group in opt.param_groups:
        group["lr"] = base * frac


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
