"""A fair model of a CSV table in a run folder, and its audit.

``fair_train`` splits the rows (``holdout`` of them held out, fixed seed), fits an
:class:`AdversarialFairClassifier` (or a :class:`FairRepresentation`) on the rest with the
target (and, unless ``sensitive_as_feature``, the sensitive column) left out of the
features, and writes the folder (kind
``fair``): ``manifest.json``, ``config.yaml``, ``model.pt`` (weights_only: settings, the
feature encoding, both networks), ``report.json`` (held-out accuracy, fairlearn's gaps,
per-group rates, the fresh-adversary audit) and ``fairness.png``. ``fair_audit`` reads the
folder and the CSV again and trains fresh adversaries on the held-out rows.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.config import option, save_yaml
from ganforge.data.table import Table, read_table
from ganforge.errors import GanforgeError
from ganforge.fairness.audit import fresh_adversaries, gaps
from ganforge.fairness.estimator import FORMAT, AdversarialFairClassifier, FairRepresentation
from ganforge.fairness.features import labels, sensitive_groups
from ganforge.fairness.recipe import CONSTRAINTS
from ganforge.io.atomic import atomic_write_json
from ganforge.io.rundir import RunLock, check_out_folder, require_kind, run_kind, write_manifest
from ganforge.io.safe import load_safely, save_state
from ganforge.tables.evaluate import split_rows

KIND = "fair"
MODEL = "model.pt"


@dataclass
class FairConfig:
    """The settings of ``ganforge fair train`` (``config.yaml`` of a fair run)."""

    data: str | None = option(None, "the CSV file", flag="--data", metavar="FILE.csv")
    target: str | None = option(None, "the column to predict (two classes)", metavar="COL")
    sensitive: str | None = option(
        None, "the sensitive column, or a number split at a threshold: 'age>=25'", metavar="COL"
    )
    constraint: str = option(
        "demographic_parity",
        "what the adversary sees: the prediction "
        "(demographic parity) or the prediction and the label (equalized "
        "odds)",
        choices=CONSTRAINTS,
    )
    model: str = option(
        "classifier",
        "a debiased classifier, or a fair representation (an encoder to hand to others)",
        choices=("classifier", "representation"),
    )
    alpha: float = option(3.0, "adversary weight: 0 is the unconstrained model", metavar="A")
    dim: int = option(2, "representation size (--model representation)", metavar="D")
    epochs: int = option(20, "passes over the training rows", metavar="E")
    batch_size: int = option(256, "rows per step", metavar="B")
    width: int = option(64, "units per hidden layer of the model", metavar="W")
    adversary_width: int | None = option(
        None, "hidden units of the adversary (0: linear)", metavar="W",
        default_text="32; 64 for a representation",
    )  # fmt: skip
    adversary_steps: int | None = option(
        None, "adversary steps per model step", metavar="K",
        default_text="5; 10 for a representation",
    )  # fmt: skip
    sensitive_as_feature: bool = option(
        False, "let the model read the sensitive column too (it can then treat the groups "
        "differently to equalise their rates; left out by default)",
        flag="--sensitive-as-feature",
    )  # fmt: skip
    holdout: float = option(0.3, "share of rows held out for the report and the audit", metavar="P")
    seed: int = option(0, "random seed (the split and the networks)")
    device: str = option("cpu", "cpu, cuda, mps, auto")

    def validate(self) -> None:
        for name in ("data", "target", "sensitive"):
            if not getattr(self, name):
                raise GanforgeError(f"give --{name}")
        if not 0 < self.holdout < 1:
            raise GanforgeError(f"--holdout must be in (0, 1), got {self.holdout}")
        if not 0 <= self.seed < 2**63:
            raise GanforgeError(f"--seed must be in [0, 2**63), got {self.seed}")
        # The model's own limits, before the data is read.
        self.estimator()._check_settings()

    def estimator(self, progress: bool = False):
        common = dict(
            constraint=self.constraint,
            alpha=self.alpha,
            epochs=self.epochs,
            batch_size=self.batch_size,
            width=self.width,
            seed=self.seed,
            device=self.device,
            progress=progress,
        )
        for name in ("adversary_width", "adversary_steps"):
            if getattr(self, name) is not None:
                common[name] = getattr(self, name)
        if self.model == "representation":
            return FairRepresentation(dim=self.dim, **common)
        return AdversarialFairClassifier(**common)


@dataclass
class Prepared:
    train: Table
    test: Table
    y: np.ndarray
    y_test: np.ndarray
    a: np.ndarray
    a_test: np.ndarray
    groups: list[str]
    column: str
    classes: list[str]


def prepare(cfg: FairConfig, table: Table | None = None) -> Prepared:
    """The split, labels and groups of a fair run's table (the same every time); the
    features are every column but the target and the sensitive one."""
    table = table if table is not None else read_table(cfg.data)
    y, classes = labels(table, cfg.target)
    a, groups, column = sensitive_groups(table, cfg.sensitive)
    if column == cfg.target:
        raise GanforgeError("the target and the sensitive column must differ")
    left_out = (cfg.target,) if cfg.sensitive_as_feature else (cfg.target, column)
    features = Table(
        [c for c in table.columns if c.name not in left_out],
        {k: v for k, v in table.values.items() if k not in left_out},
    )
    fit, held = split_rows(len(table), cfg.holdout, cfg.seed)  # as tables.evaluate.split
    if min(len(fit), len(held)) < 20:
        raise GanforgeError(f"{len(table)} rows are too few to train and hold out from")
    for g, name in enumerate(groups):
        n_fit, n_held = int((a[fit] == g).sum()), int((a[held] == g).sum())
        if n_fit < 1 or n_held < 4:
            raise GanforgeError(
                f"the group {name!r} has {n_fit} training and {n_held} held-out rows; each "
                "group needs some of both (4 held out for the audit): merge small groups "
                "or change --holdout"
            )
    return Prepared(
        features.rows(fit),
        features.rows(held),
        y[fit],
        y[held],
        a[fit],
        a[held],
        groups,
        column,
        classes,
    )


def _outputs(model, table: Table) -> np.ndarray:
    if isinstance(model, FairRepresentation):
        return model.transform(table)
    return model.decision_function(table)[:, None]


def _predict_codes(model, table: Table) -> np.ndarray:
    if isinstance(model, FairRepresentation):
        return np.searchsorted(model.classes_, model.predict(table))
    return model.predict_codes(table)


def group_rates(y: np.ndarray, pred: np.ndarray, a: np.ndarray, names: list[str]) -> list[dict]:
    """Per group: rows, selection rate, true- and false-positive rates."""
    out = []
    for g, name in enumerate(names):
        m = a == g
        pos, neg = m & (y == 1), m & (y == 0)
        out.append(
            {
                "group": name,
                "rows": int(m.sum()),
                "selection_rate": float(pred[m].mean()) if m.any() else None,
                "true_positive_rate": float(pred[pos].mean()) if pos.any() else None,
                "false_positive_rate": float(pred[neg].mean()) if neg.any() else None,
            }
        )
    return out


def _audit(cfg: FairConfig, model, p: Prepared) -> dict[str, Any]:
    outputs = _outputs(model, p.test)
    given = p.y_test if cfg.constraint == "equalized_odds" else None
    return fresh_adversaries(outputs, p.a_test, given, seed=cfg.seed)


def fair_train(
    cfg: FairConfig, out: str | Path, table: Table | None = None, progress: bool = True
) -> dict[str, Any]:
    """Fit the fair model of ``cfg`` into the new folder ``out``; returns the report."""
    cfg.validate()
    out = Path(out)
    check_out_folder(out, KIND)
    if (out / MODEL).exists():
        raise GanforgeError(f"{out} already holds a fair model; choose another --out")
    p = prepare(cfg, table)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GanforgeError(f"cannot create --out {out}: {err.strerror or err}") from None
    try:
        with RunLock(out):
            report = _fit_and_write(cfg, out, p, progress)
    except BaseException:
        if created:  # nothing half-made is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    return report


def _fit_and_write(cfg: FairConfig, out: Path, p: Prepared, progress: bool) -> dict[str, Any]:
    model = cfg.estimator(progress)
    model.fit(p.train, p.y, sensitive_features=p.a)
    pred = _predict_codes(model, p.test)
    report = {
        "data": cfg.data,
        "target": cfg.target,
        "sensitive": cfg.sensitive,
        "groups": p.groups,
        "positive_class": p.classes[1],
        "constraint": cfg.constraint,
        "model": cfg.model,
        "alpha": cfg.alpha,
        "train_rows": len(p.train),
        "held_out_rows": len(p.test),
        "held_out": gaps(p.y_test, pred, p.a_test),
        "majority_rate": float(max(p.y_test.mean(), 1 - p.y_test.mean())),
        "by_group": group_rates(p.y_test, pred, p.a_test, p.groups),
        "audit": _audit(cfg, model, p),
        "uninformative": bool(getattr(model, "uninformative_", False)),
        "fit_seconds": round(model.fit_seconds_, 1),
    }
    write_manifest(out, KIND)
    save_yaml(cfg, out / "config.yaml")
    picture(report, out / "fairness.png")
    atomic_write_json(out / "report.json", report)
    save_state(out / MODEL, model.state_dict())  # last: a folder with a model is whole
    return report


def load_fair_model(run: str | Path):
    """The fitted estimator of a fair run folder."""
    run = Path(run)
    if not run.is_dir():
        raise GanforgeError(f"{run} is not a run folder")
    if run_kind(run) != KIND:
        require_kind(run, KIND)  # names what the folder is, when it is another kind
        raise GanforgeError(f"{run} is not a fair run folder (made by 'ganforge fair train')")
    if not (run / MODEL).is_file():
        raise GanforgeError(f"{run} holds no {MODEL}; was its training finished?")
    state = load_safely(run / MODEL, FORMAT, "fair model")
    cls = FairRepresentation if state.get("estimator") == "FairRepresentation" else None
    return (cls or AdversarialFairClassifier).from_state(state)


def fair_audit(run: str | Path, data: str | Path | None = None) -> dict[str, Any]:
    """Fresh adversaries on the held-out rows of a fair run (the CSV it was trained on, or
    ``data``, a file with the same columns split the same way)."""
    from ganforge.config import load_yaml, merge

    model = load_fair_model(run)
    cfg = merge(FairConfig(), load_yaml(Path(run) / "config.yaml"))
    if data is not None:
        cfg.data = str(data)
    if not cfg.data or not Path(cfg.data).is_file():
        raise GanforgeError(f"the run's data file {cfg.data} is gone; give it with --data")
    p = prepare(cfg)
    pred = _predict_codes(model, p.test)
    return {
        "held_out": gaps(p.y_test, pred, p.a_test),
        "audit": _audit(cfg, model, p),
        "groups": p.groups,
        "positive_class": p.classes[1],
    }


def format_report(report: dict[str, Any]) -> str:
    from ganforge.fairness.audit import format_audit

    h = report["held_out"]
    lines = [
        f"held-out accuracy {h['accuracy']:.4f}, demographic-parity gap "
        f"{h['demographic_parity']:.4f}, equalized-odds gap {h['equalized_odds']:.4f}"
    ]
    for g in report.get("by_group", []):
        rate = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(
            f"  {g['group']:<24s} rows {g['rows']:>6,}  selected {rate(g['selection_rate'])}"
            f"  TPR {rate(g['true_positive_rate'])}  FPR {rate(g['false_positive_rate'])}"
        )
    lines.append(format_audit(report["audit"]))
    return "\n".join(lines)


def picture(report: dict[str, Any], path: Path) -> None:
    """Per-group rates beside the fresh adversaries' balanced accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.viz.plots import save_png

    groups = report["by_group"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    keys = ("selection_rate", "true_positive_rate", "false_positive_rate")
    width = 0.8 / len(groups)
    for i, g in enumerate(groups):
        values = [g[k] if g[k] is not None else 0.0 for k in keys]
        left.bar(np.arange(3) + i * width, values, width, label=g["group"])
    left.set_xticks(np.arange(3) + 0.4 - width / 2, ["selected", "TPR", "FPR"])
    left.set_xlabel(f"rates of predicting {report['target']} = {report['positive_class']}")
    h = report["held_out"]
    left.set_title(
        f"held out: acc {h['accuracy']:.3f}, DP gap {h['demographic_parity']:.3f}, "
        f"EO gap {h['equalized_odds']:.3f}",
        fontsize=9,
    )
    left.legend(fontsize=7)
    audit = report["audit"]
    names = list(audit["balanced_accuracy"])
    right.barh(names, [audit["balanced_accuracy"][n] for n in names], color="tab:gray")
    right.axvline(audit["baseline"], color="red", ls="--", lw=1)
    right.set_xlim(0.4, 1.0)
    right.set_xlabel(f"balanced accuracy recovering the group (red: {audit['baseline_is']})")
    right.set_title("fresh adversaries on held-out outputs", fontsize=9)
    fig.tight_layout()
    save_png(fig, path)
