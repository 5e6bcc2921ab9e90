"""How good and how private a synthetic table is, against real rows held out from training.

- Quality: SDMetrics' quality report (column shapes: KS / total-variation complement per
  column; column-pair trends: correlation and contingency similarity per pair), the
  field's reference implementation.
- Machine-learning efficacy: gradient-boosted trees (scikit-learn's
  HistGradientBoosting) and logistic regression trained on synthetic rows, tested on the
  held-out real rows, beside the same trained on the real training rows.
- Detection: the cross-validated ROC AUC of gradient-boosted trees telling held-out real
  rows from as many synthetic ones (0.5: indistinguishable).
- Privacy: each synthetic row's distance to its closest training record (DCR; numbers
  scaled to [0, 1] by the training range, categories one-hot), against the same distance
  for held-out real rows, and the share of synthetic rows that copy a training row exactly.

Also :func:`independent_columns`: rows made by drawing each column independently from
the real table, the floor any model must clear.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ganforge.data.table import Table
from ganforge.data.table_encoding import category_codes
from ganforge.errors import GanforgeError

DETECTION_ROWS = 10_000
DCR_ROWS = 3_000


def _frame(table: Table):
    """A pandas frame with typed columns: float (NaN), datetime64, object text (NaN)."""
    import pandas as pd

    data = {}
    for c in table.columns:
        v = table.values[c.name]
        if c.kind == "datetime":
            data[c.name] = pd.to_datetime(v, unit="ns")
        elif c.kind in ("categorical", "boolean"):
            data[c.name] = pd.Series(v, dtype=object).where(pd.notna(v), np.nan)
        else:
            data[c.name] = v.astype(np.float64)
    return pd.DataFrame(data)


def _metadata(table: Table) -> dict[str, Any]:
    kinds = {"continuous": "numerical", "integer": "numerical", "categorical": "categorical",
             "boolean": "categorical", "datetime": "datetime"}  # fmt: skip
    return {"columns": {c.name: {"sdtype": kinds[c.kind]} for c in table.columns}}


def quality(real: Table, synthetic: Table) -> dict[str, float]:
    """SDMetrics' quality report: overall score, column shapes, column-pair trends."""
    from sdmetrics.reports import QualityReport

    report = QualityReport()
    meta = {"tables": {"table": _metadata(real)}}
    report.generate({"table": _frame(real)}, {"table": _frame(synthetic)}, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    return {"score": round(float(report.get_score()), 4),
            "column_shapes": round(float(props["Column Shapes"]), 4),
            "column_pair_trends": round(float(props["Column Pair Trends"]), 4)}  # fmt: skip


def _features(train: Table, tables: list[Table], target: str | None = None):
    """Numbers as floats (NaN kept), text as ordinal codes of the training categories."""
    out = []
    names = [c.name for c in train.columns if c.name != target]
    for t in tables:
        cols = []
        for name in names:
            c = train.column(name)
            v = t.values[name]
            if c.kind in ("categorical", "boolean"):
                codes = category_codes(c, v).astype(np.float64)
                codes[codes < 0] = np.nan
                cols.append(codes)
            else:
                cols.append(v.astype(np.float64))
        out.append(np.stack(cols, 1))
    # Boosted trees take at most 255 categories per feature; more stay ordinal codes.
    discrete = [train.column(n).kind in ("categorical", "boolean")
                and len(train.column(n).categories) <= 255 for n in names]  # fmt: skip
    return out, np.array(discrete)


def ml_efficacy(
    train: Table, test: Table, target: str, synthetic: Table | None = None, seed: int = 0
) -> dict[str, float]:
    """Accuracy on ``test`` of models trained on ``synthetic`` (or on ``train`` itself
    when None); the feature encoding is fitted on ``train``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    column = train.column(target)
    if column.kind not in ("categorical", "boolean"):
        raise GanforgeError(f"the target {target!r} is {column.kind}; choose a categorical column")
    fit_on = synthetic if synthetic is not None else train
    (x_fit, x_test), discrete = _features(train, [fit_on, test], target)
    y_fit = np.asarray(fit_on.values[target], dtype=object)
    y_test = np.asarray(test.values[target], dtype=object)
    keep_fit, keep_test = y_fit != None, y_test != None  # noqa: E711 (object arrays)
    x_fit, y_fit = x_fit[keep_fit], y_fit[keep_fit].astype(str)
    x_test, y_test = x_test[keep_test], y_test[keep_test].astype(str)
    if len(y_fit) == 0 or len(y_test) == 0:
        raise GanforgeError(f"the target {target!r} has no values to learn or to test on")
    if len(set(y_fit)) < 2:
        return {"boosting": float(np.mean(y_test == y_fit[0])),
                "logistic": float(np.mean(y_test == y_fit[0]))}  # fmt: skip
    boost = HistGradientBoostingClassifier(categorical_features=discrete, random_state=seed)
    boost.fit(x_fit, y_fit)
    idx = np.arange(x_fit.shape[1])
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), idx[~discrete]),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value=-1),
                              OneHotEncoder(handle_unknown="ignore")), idx[discrete]),
    ])  # fmt: skip
    logistic = make_pipeline(prep, LogisticRegression(max_iter=500))
    logistic.fit(x_fit, y_fit)
    return {"boosting": round(float(np.mean(boost.predict(x_test) == y_test)), 4),
            "logistic": round(float(np.mean(logistic.predict(x_test) == y_test)), 4)}  # fmt: skip


def detection_auc(real: Table, synthetic: Table, seed: int = 0) -> float:
    """Cross-validated (3 folds) ROC AUC of boosted trees at telling real from synthetic."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic), DETECTION_ROWS // 2)
    a = real.rows(rng.choice(len(real), n, replace=False))
    b = synthetic.rows(rng.choice(len(synthetic), n, replace=False))
    (xa, xb), discrete = _features(real, [a, b])
    x = np.concatenate([xa, xb])
    y = np.r_[np.zeros(n), np.ones(n)]
    model = HistGradientBoostingClassifier(categorical_features=discrete, random_state=seed)
    return round(float(cross_val_score(model, x, y, cv=3, scoring="roc_auc").mean()), 4)


def _scaled(train: Table, tables: list[Table]) -> list[np.ndarray]:
    """Rows as vectors: numbers min-max scaled by ``train`` (missing: 0 and a flag),
    categories one-hot (missing: all zero)."""
    out = [[] for _ in tables]
    for c in train.columns:
        for i, t in enumerate(tables):
            v = t.values[c.name]
            if c.kind in ("categorical", "boolean"):
                codes = category_codes(c, v)
                onehot = np.zeros((len(v), len(c.categories)), np.float32)
                ok = codes >= 0
                onehot[np.nonzero(ok)[0], codes[ok]] = 1
                out[i].append(onehot)
            else:
                ref = train.values[c.name]
                lo, hi = np.nanmin(ref), np.nanmax(ref)
                x = (v - lo) / (hi - lo if hi > lo else 1)
                gone = np.isnan(x)
                out[i].append(np.stack([np.where(gone, 0, x), gone], 1).astype(np.float32))
    return [np.concatenate(parts, 1) for parts in out]


def privacy(train: Table, holdout: Table, synthetic: Table, seed: int = 0) -> dict[str, float]:
    """Distance to the closest training record for synthetic and held-out real rows, and
    exact copies of training rows."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    s = synthetic.rows(rng.choice(len(synthetic), min(len(synthetic), DCR_ROWS), replace=False))
    h = holdout.rows(rng.choice(len(holdout), min(len(holdout), DCR_ROWS), replace=False))
    xt, xs, xh = _scaled(train, [train, s, h])
    nn = NearestNeighbors(n_neighbors=1).fit(xt)
    ds, dh = nn.kneighbors(xs)[0][:, 0], nn.kneighbors(xh)[0][:, 0]
    seen = set(map(tuple, train.to_frame().astype(str).to_numpy()))

    def copies(t: Table) -> float:
        rows = t.to_frame().astype(str).to_numpy()
        return float(np.mean([tuple(r) in seen for r in rows]))

    return {
        "dcr_synthetic_median": round(float(np.median(ds)), 4),
        "dcr_holdout_median": round(float(np.median(dh)), 4),
        "dcr_synthetic_p5": round(float(np.percentile(ds, 5)), 4),
        "dcr_holdout_p5": round(float(np.percentile(dh, 5)), 4),
        "exact_copies": round(copies(s), 4),
        "exact_copies_holdout": round(copies(h), 4),
    }


def evaluate_table(
    train: Table, holdout: Table, synthetic: Table, target: str | None = None, seed: int = 0
) -> dict[str, Any]:
    """Every measure above for ``synthetic``, judged against ``holdout`` (real rows the
    model never saw), with ``train`` for the efficacy baseline and the privacy distances."""
    if [c.name for c in synthetic.columns] != [c.name for c in train.columns]:
        raise GanforgeError("the synthetic table's columns differ from the real one's")
    out: dict[str, Any] = {"rows": {"train": len(train), "holdout": len(holdout),
                                    "synthetic": len(synthetic)}}  # fmt: skip
    out["quality"] = quality(holdout, synthetic)
    if target is not None:
        out["ml_efficacy"] = {
            "target": target,
            "trained_on_synthetic": ml_efficacy(train, holdout, target, synthetic, seed),
            "trained_on_real": ml_efficacy(train, holdout, target, None, seed),
        }
    out["detection_auc"] = detection_auc(holdout, synthetic, seed)
    out["privacy"] = privacy(train, holdout, synthetic, seed)
    return out


def independent_columns(table: Table, n: int, seed: int = 0) -> Table:
    """``n`` rows drawing every column independently from ``table`` (no model at all)."""
    rng = np.random.default_rng(seed)
    return Table(table.columns, {k: v[rng.integers(len(v), size=n)]
                                 for k, v in table.values.items()})  # fmt: skip


def split_rows(n: int, holdout: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of a fixed random split of ``n`` rows into (train, holdout)."""
    if not 0 < holdout < 1:
        raise GanforgeError(f"the held-out share must be in (0, 1), got {holdout}")
    order = np.random.default_rng(seed).permutation(n)
    cut = int(round(n * (1 - holdout)))
    return order[:cut], order[cut:]


def split(table: Table, holdout: float = 0.2, seed: int = 0) -> tuple[Table, Table]:
    """A fixed random split into (train, holdout)."""
    fit, held = split_rows(len(table), holdout, seed)
    return table.rows(fit), table.rows(held)


def evaluate_run(
    run, real, train=None, target: str | None = None, n: int | None = None, seed: int = 0
) -> dict[str, Any]:
    """:func:`evaluate_table` for a table run's rows (``n``, default as many as ``real``)
    against the held-out CSV ``real``, beside the independent-columns floor. ``train``
    defaults to the CSV the run was trained on."""
    from pathlib import Path

    from ganforge.data.table import read_table
    from ganforge.tables.runner import load_table_model
    from ganforge.train.checkpoint import load_checkpoint

    model = load_table_model(run)
    kinds = {c.name: c.kind for c in model.columns}
    if train is None:
        train = load_checkpoint(run, kind="table")["config"].get("data")
        if not train or not Path(train).is_file():
            raise GanforgeError(f"the run's training file {train!r} is not there; pass --train")
    train_table, holdout = read_table(train, kinds), read_table(real, kinds)
    for t, what in ((train_table, train), (holdout, real)):
        if t.names != [c.name for c in model.columns]:
            raise GanforgeError(f"{what} does not have the run's columns in its order")
    if target is not None and train_table.column(target).kind not in ("categorical", "boolean"):
        kind = train_table.column(target).kind
        raise GanforgeError(f"the target {target!r} is {kind}; choose a categorical column")
    if n is not None and n < 10:
        raise GanforgeError(f"-n must be at least 10, got {n}")
    n = n or len(holdout)
    synthetic = model.sample(n, seed)
    return {
        "run": str(run), "real": str(real), "train": str(train),
        "synthetic": evaluate_table(train_table, holdout, synthetic, target, seed),
        "independent_columns": evaluate_table(
            train_table, holdout, independent_columns(train_table, n, seed), target, seed
        ),
    }  # fmt: skip


def _rows(report: dict[str, Any]) -> list[tuple[str, Any]]:
    q, p = report["quality"], report["privacy"]
    rows = [("quality score", q["score"]), ("  column shapes", q["column_shapes"]),
            ("  column pair trends", q["column_pair_trends"])]  # fmt: skip
    if "ml_efficacy" in report:
        e = report["ml_efficacy"]
        rows += [("boosted trees accuracy", e["trained_on_synthetic"]["boosting"]),
                 ("logistic accuracy", e["trained_on_synthetic"]["logistic"])]  # fmt: skip
    rows += [("detection AUC (0.5 best)", report["detection_auc"]),
             (f"median DCR (holdout {p['dcr_holdout_median']:.3f})", p["dcr_synthetic_median"]),
             ("exact copies of training rows", p["exact_copies"])]  # fmt: skip
    return rows


def format_report(report: dict[str, Any]) -> str:
    """The run's measures beside the independent-columns floor, as text."""
    ours, floor = _rows(report["synthetic"]), _rows(report["independent_columns"])
    lines = [f"{'':32s} {'synthetic':>10s} {'indep. cols':>12s}"]
    for (name, a), (_, b) in zip(ours, floor, strict=True):
        lines.append(f"{name:32s} {a:>10.4f} {b:>12.4f}")
    e = report["synthetic"].get("ml_efficacy")
    if e:
        real = e["trained_on_real"]
        lines.append(f"trained on real rows: boosted trees {real['boosting']:.4f}, "
                     f"logistic {real['logistic']:.4f}")  # fmt: skip
    return "\n".join(lines)
