"""Fair models in the scikit-learn style.

:class:`AdversarialFairClassifier` (Zhang, Lemoine & Mitchell 2018): ``fit(X, y,
sensitive_features=A)``, ``predict``, ``predict_proba``. :class:`FairRepresentation`
(LAFTR-style, Madras et al. 2018): ``fit`` the same way, ``transform(X)`` gives a
representation to hand to others.

``X``: a 2-D array of numbers (N, D); images (N, C, H, W) as float in [-1, 1] or uint8; or
a pandas DataFrame / ganforge :class:`~ganforge.data.table.Table`, encoded by
:class:`~ganforge.fairness.features.TableFeatures` fitted in ``fit``. ``y``: two classes,
any values. ``A``: any values, at least two groups.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.errors import GanforgeError, Interrupted
from ganforge.fairness.features import TableFeatures
from ganforge.fairness.recipe import (
    CONSTRAINTS,
    FairClassifierRecipe,
    FairGameRecipe,
    FairRepresentationRecipe,
)
from ganforge.train.device import pick_device
from ganforge.train.engine import Engine

FORMAT = "ganforge-fair-1"
CONSTANT_SHARE = 0.99  # predictions this one-sided are "constant"
# Training accuracy within this of always predicting the majority class: nothing learned.
NO_BETTER = 0.01


def _is_frame(X: Any) -> bool:
    return type(X).__name__ == "DataFrame"


def _table(X: Any):
    """A ganforge Table for the training rows given as a Table or a DataFrame (else None)."""
    from ganforge.data.table import Table, read_table

    if isinstance(X, Table):
        return X
    if not _is_frame(X):
        return None
    if X.shape[1] == 1:  # read_table wants two columns: give it a stand-in, then drop it
        table = read_table(X.assign(__ganforge_pad__=0))
        return Table(table.columns[:1], {table.columns[0].name: table.values[table.names[0]]})
    return read_table(X)


def _frame_values(X: Any) -> dict[str, np.ndarray]:
    """A DataFrame's columns as arrays, as they are (the fitted encoding reads them)."""
    return {str(name): X[name].to_numpy() for name in X.columns}


def _vectors(X: Any, what: str = "X") -> Tensor:
    try:
        x = torch.as_tensor(np.asarray(X) if not isinstance(X, Tensor) else X)
    except (TypeError, ValueError, RuntimeError):
        raise GanforgeError(
            f"{what} must hold numbers (got {np.asarray(X).dtype}); pass a pandas DataFrame "
            "for a table with text columns"
        ) from None
    if x.dim() not in (2, 4) or len(x) == 0:
        raise GanforgeError(
            f"{what} must be rows of numbers (N, D) or images (N, C, H, W), "
            f"got shape {tuple(x.shape)}"
        )
    if x.dtype == torch.uint8 and x.dim() == 4:
        return x.float().div(127.5).sub(1.0)
    whole = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)
    if not (x.is_floating_point() or x.dtype in whole):
        raise GanforgeError(f"{what} must hold numbers, got {x.dtype}")
    x = x.float()
    if not bool(x.isfinite().all()):
        raise GanforgeError(f"{what} holds NaN or infinite values; fill them first")
    if x.dim() == 4 and (float(x.min()) < -1.001 or float(x.max()) > 1.001):
        raise GanforgeError(
            "float images must be in [-1, 1] (ganforge's convention); pass uint8 images or rescale"
        )
    return x


def _codes(values: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (sorted) and each row's index among them; missing values refused."""
    import pandas as pd

    v = np.asarray(values, dtype=object).reshape(-1)
    bad = np.asarray(pd.isna(v), dtype=bool)
    if bad.any():
        raise GanforgeError(f"{what} is missing in {int(bad.sum())} rows; drop or fill them first")
    try:
        distinct, codes = np.unique(np.asarray(values).reshape(-1), return_inverse=True)
    except TypeError:
        raise GanforgeError(f"{what} mixes kinds of values (text and numbers); use one") from None
    return distinct, codes.astype(np.int64)


def _plain(value: Any) -> Any:
    """NumPy scalars as Python ones (a weights_only file keeps only plain types)."""
    return value.item() if isinstance(value, np.generic) else value


class _FairGame:
    """Shared settings, input handling and the engine run."""

    def __init__(
        self,
        constraint: str = "demographic_parity",
        alpha: float = 3.0,
        epochs: int = 20,
        batch_size: int = 256,
        width: int = 64,
        adversary_width: int = 32,
        adversary_steps: int = 5,
        lr: float = 1e-3,
        adversary_lr: float = 3e-3,
        warmup_epochs: float = 5.0,
        ema_decay: float = 0.995,
        device: str = "cpu",
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.constraint, self.alpha, self.epochs = constraint, alpha, epochs
        self.batch_size, self.width, self.adversary_width = batch_size, width, adversary_width
        self.adversary_steps, self.lr, self.adversary_lr = adversary_steps, lr, adversary_lr
        self.warmup_epochs, self.ema_decay = warmup_epochs, ema_decay
        self.device, self.seed, self.progress = device, seed, progress
        self.features_: TableFeatures | None = None
        self.model_: torch.nn.Module | None = None

    def _check_settings(self) -> None:
        if self.constraint not in CONSTRAINTS:
            raise GanforgeError(
                f"constraint must be one of {', '.join(CONSTRAINTS)}, got {self.constraint!r}"
            )
        for name in ("alpha", "lr", "adversary_lr", "ema_decay", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise GanforgeError(f"{name} must be a number, got {value!r}")
        if not (math.isfinite(self.alpha) and 0 <= self.alpha <= 1e4):
            raise GanforgeError(f"alpha must be in [0, 10000], got {self.alpha}")
        limits = {"epochs": (1, 100_000), "batch_size": (1, 1_000_000), "width": (1, 8192),
                  "adversary_width": (0, 8192), "adversary_steps": (1, 1000)}  # fmt: skip
        if hasattr(self, "dim"):
            limits["dim"] = (1, 4096)
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not (isinstance(value, int | np.integer) and low <= value <= high):
                raise GanforgeError(
                    f"{name} must be a whole number in [{low}, {high}], got {value}"
                )
        for name in ("lr", "adversary_lr"):
            if not (0 < getattr(self, name) <= 1):
                raise GanforgeError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not (0 <= self.ema_decay < 1):
            raise GanforgeError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not (0 <= self.warmup_epochs <= 1e5):
            raise GanforgeError(f"warmup_epochs must be in [0, 100000], got {self.warmup_epochs}")
        if not (isinstance(self.seed, int | np.integer) and 0 <= self.seed < 2**63):
            raise GanforgeError(f"seed must be a whole number in [0, 2**63), got {self.seed}")

    def _inputs(self, X: Any, fitting: bool, exclude: tuple[str, ...] = ()) -> Tensor:
        from ganforge.data.table import Table

        if fitting:
            table = _table(X)
            self.features_ = None if table is None else TableFeatures.fit(table, exclude)
            return _vectors(X) if table is None else self.features_.transform(table)
        if isinstance(X, Table) or _is_frame(X):
            if self.features_ is None:
                raise GanforgeError("this model was fitted on arrays; pass an array")
            # The fitted encoding reads the columns as given: no second guess of their kinds.
            values = X.values if isinstance(X, Table) else _frame_values(X)
            return self.features_.transform(values)
        if self.features_ is not None:
            raise GanforgeError("this model was fitted on a table; pass a table (DataFrame)")
        x = _vectors(X)
        if tuple(x.shape[1:]) != self.input_shape_:
            raise GanforgeError(
                f"this model was fitted on inputs of shape {self.input_shape_}, "
                f"got {tuple(x.shape[1:])}"
            )
        return x

    def _prepare(self, X: Any, y: Any, sensitive_features: Any) -> tuple[Tensor, Tensor, Tensor]:
        self._check_settings()
        if sensitive_features is None:
            raise GanforgeError("give the sensitive attribute: fit(X, y, sensitive_features=A)")
        x = self._inputs(X, fitting=True)
        self.input_shape_ = tuple(x.shape[1:])
        self.classes_, y_codes = _codes(y, "the label")
        if len(self.classes_) != 2:
            raise GanforgeError(
                f"the label has {len(self.classes_)} classes; only binary labels are supported"
            )
        self.groups_, a_codes = _codes(sensitive_features, "the sensitive attribute")
        if len(self.groups_) < 2:
            raise GanforgeError(
                "the sensitive attribute has one value; fairness needs at least two groups"
            )
        if not (len(y_codes) == len(a_codes) == len(x)):
            raise GanforgeError(
                f"X, y and the sensitive attribute differ in length "
                f"({len(x)}, {len(y_codes)}, {len(a_codes)})"
            )
        return x, torch.from_numpy(y_codes), torch.from_numpy(a_codes)

    def _game(self, x: Tensor) -> dict[str, Any]:
        steps_per_epoch = max(1, len(x) // min(self.batch_size, len(x)))
        self.total_steps_ = int(self.epochs) * steps_per_epoch
        return dict(
            constraint=self.constraint,
            alpha=float(self.alpha),
            batch_size=int(self.batch_size),
            # at most a quarter of the run, so a short run still plays the game
            warmup=int(min(self.warmup_epochs, self.epochs / 4) * steps_per_epoch),
            adversary_steps=int(self.adversary_steps),
            adversary_width=int(self.adversary_width),
            lr=float(self.lr),
            adversary_lr=float(self.adversary_lr),
            device=pick_device(self.device),
        )

    def _run(self, recipe: FairGameRecipe, name: str) -> None:
        engine = Engine(
            recipe,
            self.total_steps_,
            log_every=max(1, self.total_steps_ // 20),
            progress=self.progress,
            desc=recipe.title,
            seed=self.seed,
        )
        result = engine.run()
        if result.interrupted:
            raise Interrupted(f"interrupted at step {result.steps} of {self.total_steps_}")
        self.model_ = recipe.players.emas[name].model.cpu().eval()
        self.adversary_ = recipe.players["adversary"].cpu().eval()
        self.fit_seconds_ = engine.seconds

    def _check_fitted(self) -> torch.nn.Module:
        if self.model_ is None:
            raise GanforgeError(f"this {type(self).__name__} is not fitted yet; call fit() first")
        return self.model_

    SETTINGS = (
        "constraint",
        "alpha",
        "epochs",
        "batch_size",
        "width",
        "adversary_width",
        "adversary_steps",
        "lr",
        "adversary_lr",
        "warmup_epochs",
        "ema_decay",
        "seed",
    )

    FITTED = ("constant_", "uninformative_", "fit_seconds_")

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors (for a ``weights_only`` file): settings, classes,
        groups, the feature encoding and both networks."""
        self._check_fitted()
        return {
            "format": FORMAT,
            "estimator": type(self).__name__,
            "settings": {k: _plain(getattr(self, k)) for k in (*self.SETTINGS, *self._extra)},
            "fitted": {k: _plain(getattr(self, k)) for k in self.FITTED if hasattr(self, k)},
            "classes": self.classes_.tolist(),
            "groups": self.groups_.tolist(),
            "input_shape": list(self.input_shape_),
            "features": self.features_.state_dict() if self.features_ else None,
            "model": self.model_.state_dict(),
            "adversary": self.adversary_.state_dict(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _FairGame:
        from ganforge.fairness.nets import Adversary

        try:
            est = cls(**state["settings"])
            est.classes_ = np.array(state["classes"])
            est.groups_ = np.array(state["groups"])
            est.input_shape_ = tuple(state["input_shape"])
            if state["features"] is not None:
                est.features_ = TableFeatures.from_state(state["features"])
            for k, v in state.get("fitted", {}).items():
                setattr(est, k, v)
            est.model_ = est._network().eval()
            est.model_.load_state_dict(state["model"])
            d_in = state["adversary"]["net.0.weight" if est.adversary_width else "net.weight"]
            est.adversary_ = Adversary(d_in.shape[1], len(est.groups_), est.adversary_width)
            est.adversary_.load_state_dict(state["adversary"])
        except (KeyError, TypeError, RuntimeError) as err:
            raise GanforgeError(f"an incomplete or mismatched fair model ({err})") from None
        return est


class AdversarialFairClassifier(_FairGame):
    """A binary classifier trained against an adversary that tries to recover the
    sensitive group from its prediction (``demographic_parity``) or from its prediction
    and the true label (``equalized_odds``). ``alpha``: how much the adversary's success
    costs the classifier; 0 is the unconstrained model with the same network and budget.

    After ``fit``, ``constant_`` is True when the predictions on the training rows are
    nearly all one class, and ``uninformative_`` when they are no more accurate there than
    always predicting the majority class (the constraint left nothing to predict); a
    warning says so.
    """

    _extra = ()

    def _network(self) -> torch.nn.Module:
        from ganforge.fairness.nets import body

        return body(self.input_shape_, int(self.width), 1)

    def fit(self, X: Any, y: Any, *, sensitive_features: Any) -> AdversarialFairClassifier:
        x, y_codes, a_codes = self._prepare(X, y, sensitive_features)
        torch.manual_seed(self.seed)
        recipe = FairClassifierRecipe(
            x,
            y_codes,
            a_codes,
            len(self.groups_),
            width=int(self.width),
            ema_decay=float(self.ema_decay),
            **self._game(x),
        )
        self._run(recipe, "predictor")
        pred = self._logits(x) > 0
        share = float(pred.mean())
        accuracy = float(np.mean(pred == y_codes.numpy().astype(bool)))
        majority = float(max(y_codes.float().mean(), 1 - y_codes.float().mean()))
        self.constant_ = max(share, 1 - share) >= CONSTANT_SHARE
        self.uninformative_ = self.constant_ or accuracy <= majority + NO_BETTER
        if self.uninformative_:
            what = (
                f"nearly constant ({max(share, 1 - share):.1%} one class)" if self.constant_
                else f"no better than always predicting the majority class (training accuracy "
                f"{accuracy:.3f}, majority {majority:.3f})"
            )  # fmt: skip
            warnings.warn(
                f"the predictions are {what}: under {self.constraint.replace('_', ' ')} the "
                "label cannot be predicted from what is independent of the sensitive "
                "attribute; lower alpha to trade fairness for accuracy",
                stacklevel=2,
            )
        return self

    @torch.inference_mode()
    def _logits(self, x: Tensor) -> np.ndarray:
        net = self._check_fitted()
        return torch.cat([net(part).squeeze(1) for part in x.split(4096)]).numpy()

    def decision_function(self, X: Any) -> np.ndarray:
        """The logit of the second class, ``classes_[1]``."""
        self._check_fitted()
        return self._logits(self._inputs(X, False))

    def predict_codes(self, X: Any) -> np.ndarray:
        return (self.decision_function(X) > 0).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X).astype(np.float64)))
        return np.stack([1 - p, p], 1)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_codes(X)]


class FairRepresentation(_FairGame):
    """An encoder to ``dim`` numbers trained with a classifier head (the label) against an
    adversary (the sensitive group, from the representation; with the label too for
    ``equalized_odds``). ``adversary_width=0`` makes the training adversary linear."""

    _extra = ("dim",)

    def __init__(
        self, dim: int = 2, alpha: float = 3.0, adversary_width: int = 64,
        adversary_steps: int = 10, **settings: Any,
    ) -> None:  # fmt: skip
        # A stronger adversary than the classifier's and few numbers: a representation has
        # room to hide the group from a weak adversary. On Adult (sex, alpha 3, 3 seeds) a
        # fresh MLP recovers sex at balanced accuracy at most 0.524 from 2 numbers, 0.553
        # from 4, and 0.59 from 8 against the classifier's 32-unit, 5-step adversary.
        super().__init__(
            alpha=alpha, adversary_width=adversary_width, adversary_steps=adversary_steps,
            **settings,
        )  # fmt: skip
        self.dim = dim

    def _network(self) -> torch.nn.Module:
        from ganforge.fairness.recipe import Representation

        return Representation(self.input_shape_, int(self.width), int(self.dim))

    def fit(self, X: Any, y: Any, *, sensitive_features: Any) -> FairRepresentation:
        if int(self.dim) < 1:
            raise GanforgeError("dim must be at least 1")
        x, y_codes, a_codes = self._prepare(X, y, sensitive_features)
        torch.manual_seed(self.seed)
        recipe = FairRepresentationRecipe(
            x,
            y_codes,
            a_codes,
            len(self.groups_),
            width=int(self.width),
            dim=int(self.dim),
            ema_decay=float(self.ema_decay),
            **self._game(x),
        )
        self._run(recipe, "model")
        return self

    @torch.inference_mode()
    def transform(self, X: Any) -> np.ndarray:
        """The representation, float32 (N, dim)."""
        net = self._check_fitted()
        x = self._inputs(X, False)
        return torch.cat([net(part)[0] for part in x.split(4096)]).numpy()

    @torch.inference_mode()
    def predict(self, X: Any) -> np.ndarray:
        """The classifier head's prediction (the fair model's own use of the representation)."""
        net = self._check_fitted()
        x = self._inputs(X, False)
        logit = torch.cat([net(part)[1] for part in x.split(4096)]).numpy()
        return self.classes_[(logit > 0).astype(np.int64)]
