"""A table as the networks see it: CTGAN's encoding (Xu et al., 2019).

Numbers (continuous, integer, datetime) get mode-specific normalization: a variational
Gaussian mixture (scikit-learn's BayesianGaussianMixture, at most 10 modes, those above
0.5% weight kept) is fitted per column; a value becomes the one-hot of a mode drawn from
its posterior and a scalar ``alpha = (x - mu) / (4 sigma)`` in [-1, 1]. Categories and
booleans become one-hots, with "missing" as one more category where a column has missing
values (so the generator can make it, and the conditional vector can ask for it); a
numeric column with missing values gets a two-way one-hot (present/missing) beside its
modes. "Missing" is modelled, never dropped.

The conditional vector and training-by-sampling: one discrete column is chosen uniformly,
one of its categories with probability proportional to the log of its frequency, and a
real row with that category; rare categories are seen far more often than their share.

Everything the encoder learned is plain numbers and lists (:meth:`state_dict`), so a run's
checkpoint loads with ``weights_only=True``. Rows are float32 (N, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganforge.data.table import Column, Table
from ganforge.errors import GanforgeError

NUMERIC = ("continuous", "integer", "datetime")
SPIKE_SHARE = 0.05  # a single value this common (0 capital gain, 40 hours) is a mode alone
MAX_SPIKES = 5
MAX_MODES = 10
MIN_WEIGHT = 0.005
FIT_ROWS = 10_000  # the mixture is fitted on at most this many values (speed)


@dataclass
class Span:
    """``size`` output units from ``start``: ``tanh`` (alpha) or ``softmax`` (a one-hot)."""

    column: str
    role: str  # alpha, mode, category, missing
    start: int
    size: int

    @property
    def activation(self) -> str:
        return "tanh" if self.role == "alpha" else "softmax"


class TableEncoder:
    """Fitted on a :class:`Table` (:meth:`fit`), it encodes rows to float32 vectors and
    decodes the generator's output back to a table."""

    def __init__(self, columns: list[Column], params: dict[str, dict[str, Any]]) -> None:
        self.columns, self.params = columns, params
        self.spans: list[Span] = []
        at = 0
        for c in columns:
            p = params[c.name]
            if c.kind in NUMERIC:
                parts = [("alpha", 1), ("mode", len(p["means"]) + len(p["spikes"]))]
                if p["has_missing"]:
                    parts.append(("missing", 2))
            else:  # the last slot is "missing" when the column has missing values
                parts = [("category", len(c.categories) + p["has_missing"])]
            for role, size in parts:
                self.spans.append(Span(c.name, role, at, size))
                at += size
        self.dim = at
        # The conditional vector: one block per discrete column (its categories).
        self.discrete = [s for s in self.spans if s.role == "category"]
        self.cond_dim = sum(s.size for s in self.discrete)

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, table: Table, seed: int = 0) -> TableEncoder:
        from sklearn.mixture import BayesianGaussianMixture

        params = {}
        rng = np.random.default_rng(seed)
        for c in table.columns:
            v = table.values[c.name]
            missing = _missing(c, v)
            p: dict[str, Any] = {"has_missing": bool(missing.any())}
            if c.kind in NUMERIC:
                x = v[~missing]
                p["min"], p["max"] = float(x.min()), float(x.max())
                values, counts = np.unique(x, return_counts=True)
                share = counts / len(x)
                top = np.argsort(-share)[:MAX_SPIKES]
                p["spikes"] = sorted(float(values[i]) for i in top if share[i] >= SPIKE_SHARE)
                rest = x[~np.isin(x, p["spikes"])]
                scale = float(rest.std()) if len(rest) else 1.0
                scale = scale or 1.0
                centre = float(rest.mean()) if len(rest) else 0.0
                fit = rest if len(rest) <= FIT_ROWS else rng.choice(rest, FIT_ROWS, replace=False)
                z = ((fit - centre) / scale).reshape(-1, 1)
                modes = min(MAX_MODES, len(np.unique(z)))
                if len(rest) == 0:
                    means, stds, weights = [], [], []
                elif modes < 2:
                    means, stds, weights = [centre], [scale], [1.0]
                else:
                    import warnings

                    from sklearn.exceptions import ConvergenceWarning

                    vgm = BayesianGaussianMixture(
                        n_components=modes, weight_concentration_prior_type="dirichlet_process",
                        weight_concentration_prior=0.001, max_iter=100, random_state=seed,
                    )  # fmt: skip
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", ConvergenceWarning)
                        vgm.fit(z)
                    keep = vgm.weights_ > MIN_WEIGHT
                    keep[vgm.weights_.argmax()] = True
                    means = (vgm.means_[keep, 0] * scale + centre).tolist()
                    stds = (np.sqrt(vgm.covariances_[keep, 0, 0]) * scale).tolist()
                    weights = (vgm.weights_[keep] / vgm.weights_[keep].sum()).tolist()
                p["means"], p["weights"] = means, weights
                p["stds"] = [max(s, 1e-3 * scale) for s in stds]
            params[c.name] = p
        return cls(table.columns, params)

    def state_dict(self) -> dict[str, Any]:
        return {"columns": [c.to_dict() for c in self.columns], "params": self.params}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TableEncoder:
        from ganforge.data.table import columns_from

        try:
            return cls(columns_from(state["columns"]), state["params"])
        except (KeyError, TypeError) as err:
            raise GanforgeError(f"a stored table encoder is incomplete ({err})") from None

    # -- encoding ---------------------------------------------------------------------------
    def _posterior(self, name: str, x: np.ndarray) -> np.ndarray:
        p = self.params[name]
        mu, sd, w = (np.asarray(p[k]) for k in ("means", "stds", "weights"))
        log = np.log(w) - np.log(sd) - 0.5 * ((x[:, None] - mu) / sd) ** 2
        log -= log.max(1, keepdims=True)
        prob = np.exp(log)
        return prob / prob.sum(1, keepdims=True)

    def encode(self, table: Table, seed: int = 0) -> Tensor:
        """Rows (N, dim) float32; each value's mode is drawn from its posterior."""
        rng = np.random.default_rng(seed)
        out = np.zeros((len(table), self.dim), np.float32)
        rows = np.arange(len(table))
        for s in self.spans:
            c = self._column(s.column)
            v = table.values[c.name]
            missing = _missing(c, v)
            p = self.params[c.name]
            if s.role == "missing":
                out[rows, s.start + missing.astype(int)] = 1
            elif s.role == "category":
                codes = self._slots(c, v)
                known = codes >= 0
                out[rows[known], s.start + codes[known]] = 1
            elif s.role == "mode":
                spikes = np.asarray(p["spikes"])
                spike = np.isin(v, spikes) & ~missing
                alpha = np.zeros(len(v))
                pick = len(p["means"]) + np.searchsorted(
                    spikes, np.where(spike, v, spikes[:1] if len(spikes) else 0)
                )
                smooth = ~spike & ~missing
                if p["means"] and smooth.any():
                    x = v[smooth]
                    prob = self._posterior(c.name, x)
                    chosen = (prob.cumsum(1) > rng.random((len(x), 1))).argmax(1)
                    mu, sd = np.asarray(p["means"])[chosen], np.asarray(p["stds"])[chosen]
                    alpha[smooth] = np.clip((x - mu) / (4 * sd), -0.99, 0.99)
                    pick[smooth] = chosen
                pick[missing] = 0
                out[rows, s.start + pick] = 1
                out[:, s.start - 1] = alpha  # the alpha span comes just before the mode span
        return torch.from_numpy(out)

    def _column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    # -- decoding ---------------------------------------------------------------------------
    def decode(self, rows: Tensor | np.ndarray) -> Table:
        """A table from rows (N, dim): the argmax of each one-hot, alpha through its mode."""
        x = rows.detach().float().cpu().numpy() if isinstance(rows, Tensor) else rows
        values = {}
        by_column: dict[str, dict[str, Span]] = {}
        for s in self.spans:
            by_column.setdefault(s.column, {})[s.role] = s
        for c in self.columns:
            spans, p = by_column[c.name], self.params[c.name]
            missing = np.zeros(len(x), bool)
            if "missing" in spans:
                m = spans["missing"]
                missing = x[:, m.start + 1] > x[:, m.start]
            if c.kind in NUMERIC:
                mode = x[:, spans["mode"].start : spans["mode"].start + spans["mode"].size]
                pick = mode.argmax(1)
                alpha = np.clip(x[:, spans["alpha"].start], -1, 1)
                k = len(p["means"])
                smooth = pick < k
                v = np.asarray([*p["spikes"], 0.0])[np.clip(pick - k, 0, None)]
                if k:
                    i = np.minimum(pick, k - 1)
                    curve = alpha * 4 * np.asarray(p["stds"])[i] + np.asarray(p["means"])[i]
                    v = np.where(smooth, curve, v)
                v = np.clip(v, p["min"], p["max"])
                if c.kind in ("integer", "datetime"):
                    v = np.round(v)
                values[c.name] = np.where(missing, np.nan, v)
            else:
                s = spans["category"]
                codes = x[:, s.start : s.start + s.size].argmax(1)
                cats = np.asarray([*c.categories, None], dtype=object)[codes]
                values[c.name] = cats  # the slot after the categories is "missing"
        return Table(self.columns, values)

    # -- the conditional vector -------------------------------------------------------------
    def _slots(self, column: Column, values: np.ndarray) -> np.ndarray:
        """Each value's slot in its one-hot: its category, or the "missing" slot after them
        (-1 only for a category the encoder never saw)."""
        codes = category_codes(column, values)
        if self.params[column.name]["has_missing"]:
            codes[_missing(column, values)] = len(column.categories)
        return codes

    def category_index(self, table: Table) -> list[np.ndarray]:
        """For each discrete column, each row's slot (see :meth:`_slots`)."""
        return [self._slots(c, table.values[c.name])
                for c in (self._column(s.column) for s in self.discrete)]  # fmt: skip


class ConditionSampler:
    """Training-by-sampling over the discrete columns' categories, on the device.

    :meth:`sample` gives, for a batch, the conditional vectors (B, cond_dim), the chosen
    column's span offset per row (to score the generator's answer) and a real row index
    holding that category."""

    def __init__(self, encoder: TableEncoder, codes: list[np.ndarray], device) -> None:
        self.sizes = [s.size for s in encoder.discrete]
        self.offsets = torch.tensor(np.cumsum([0, *self.sizes[:-1]]), device=device)
        self.starts = torch.tensor([s.start for s in encoder.discrete], device=device)
        self.cond_dim = encoder.cond_dim
        logp, rows, first, count = [], [], [], []
        at = 0
        for column, size in zip(codes, self.sizes, strict=True):
            freq = np.bincount(column[column >= 0], minlength=size).astype(np.float64)
            log = np.log(freq + 1)
            logp.append(np.pad(log / log.sum(), (0, max(self.sizes) - size)))
            order = np.argsort(column, kind="stable")
            present = order[column[order] >= 0]
            rows.append(present)
            starts = np.concatenate([[0], np.cumsum(freq)[:-1]]).astype(np.int64)
            first.append(np.pad(starts + at, (0, max(self.sizes) - size)))
            count.append(np.pad(freq.astype(np.int64), (0, max(self.sizes) - size)))
            at += len(present)
        self.probs = torch.tensor(np.stack(logp), dtype=torch.float32, device=device)
        self.rows = torch.from_numpy(np.concatenate(rows)).to(device)
        self.first = torch.from_numpy(np.stack(first)).to(device)
        self.count = torch.from_numpy(np.stack(count)).to(device)

    @property
    def empty(self) -> bool:
        return self.cond_dim == 0

    def sample(self, n: int, generator: torch.Generator | None = None):
        """``(cond (n, cond_dim), column (n,), category (n,), real row (n,))``."""
        dev = self.probs.device
        column = torch.randint(len(self.sizes), (n,), device=dev, generator=generator)
        category = torch.multinomial(self.probs[column], 1, generator=generator).squeeze(1)
        cond = torch.zeros(n, self.cond_dim, device=dev)
        cond[torch.arange(n, device=dev), self.offsets[column] + category] = 1
        u = torch.rand(n, device=dev, generator=generator)
        within = (u * self.count[column, category]).long()
        row = self.rows[self.first[column, category] + within]
        return cond, column, category, row

    def frequencies(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Conditional vectors drawn by the data's own frequencies (for sampling rows)."""
        dev = self.probs.device
        column = torch.randint(len(self.sizes), (n,), device=dev, generator=generator)
        share = self.count[column].float()
        category = torch.multinomial(share / share.sum(1, keepdim=True), 1,
                                     generator=generator).squeeze(1)  # fmt: skip
        cond = torch.zeros(n, self.cond_dim, device=dev)
        cond[torch.arange(n, device=dev), self.offsets[column] + category] = 1
        return cond


def _missing(column: Column, values: np.ndarray) -> np.ndarray:
    if column.kind in NUMERIC:
        return np.isnan(values)
    return np.equal(values, None)  # vectorised "is None" over an object array


def category_codes(column: Column, values: np.ndarray) -> np.ndarray:
    """Each value's index among the column's categories (-1: missing or unknown)."""
    import pandas as pd

    return pd.Categorical(values, categories=column.categories).codes.astype(np.int64)
