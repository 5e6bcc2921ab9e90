"""Fairness trade-off curves in one run (issue 25): our adversarially debiased classifier
(an adversary-weight sweep, several seeds per point), fairlearn's
``AdversarialFairnessClassifier`` (its alpha swept) and ``ExponentiatedGradient`` with
logistic regression inside (its bound swept), and the unconstrained models, on the same
features and the same 70/30 split; then our fair representation with the fresh-adversary
audit.

    python benchmarks/fairness.py            # Adult (sex; sex read too; race), German (age)
    python benchmarks/fairness.py --quick    # a smoke run: one seed, every other point

Results: ``results/fairness.json`` and ``results/fairness_<case>.png`` (accuracy against the
demographic-parity gap and against the equalized-odds gap, the unconstrained models as
stars). In each case every model sees the same features, encoded by
:class:`ganforge.fairness.features.TableFeatures`: the table's columns but the target and
the sensitive column ("-aware" cases: the sensitive column too). The split is the first
70% / last 30% of the rows in a fixed shuffle (seed 0), as in ``benchmarks/tabular.py``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).with_name("results")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "tabular"
# (file, target, sensitive, whether the models read the sensitive column too)
CASES = {
    "adult-sex": ("adult.csv", "income-per-year", "sex", False),
    "adult-sex-aware": ("adult.csv", "income-per-year", "sex", True),
    "adult-race": ("adult.csv", "income-per-year", "race", False),
    "german-age": ("german-credit.csv", "credit", "age>=25", False),
}
ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0)
# fairlearn's classifier collapsed to the majority class from alpha 1 up in a first run,
# so its sweep reaches lower.
FAIRLEARN_ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
BOUNDS = (0.005, 0.01, 0.02, 0.05, 0.1)
TARGETS = {"demographic_parity": 0.02, "equalized_odds": 0.03}


@functools.cache
def load_case(case: str, data: Path) -> dict[str, Any]:
    """The case's features, labels and groups, split as ``ganforge fair train`` splits
    (read and encoded once per worker process, not once per fit; fits only read them)."""
    from ganforge.fairness.features import TableFeatures
    from ganforge.fairness.runner import FairConfig, prepare

    file, target, sensitive, aware = CASES[case]
    cfg = FairConfig(data=str(data / file), target=target, sensitive=sensitive,
                     sensitive_as_feature=aware, holdout=0.3, seed=0)  # fmt: skip
    p = prepare(cfg)
    features = TableFeatures.fit(p.train)
    return {"x": features.transform(p.train).numpy(), "y": p.y, "a": p.a,
            "x_test": features.transform(p.test).numpy(), "y_test": p.y_test,
            "a_test": p.a_test, "groups": p.groups}  # fmt: skip


def epochs_for(n: int) -> int:
    # The same number of updates on a small table as on a large one would overfit it:
    # German credit (700 rows) trains 200 short epochs, Adult 20.
    return 20 if n > 5000 else 200


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One fit, scored on the held-out rows; a fit that fails (fairlearn's adversarial
    classifier can end in NaN) is a result too: recorded with its error, not dropped."""
    import torch

    from ganforge.fairness.audit import gaps

    torch.set_num_threads(1)
    d = load_case(job["case"], Path(job["data"]))
    start = time.perf_counter()
    base = {k: v for k, v in job.items() if k != "data"}
    base["majority"] = float(max(d["y_test"].mean(), 1 - d["y_test"].mean()))
    try:
        pred, extra = _fit(job, d)
    except Exception as err:  # noqa: BLE001 (a peer's failure is what we report)
        print(f"{job['case']:>10s} {job['method']:>22s} {job['setting']!s:>6s}: failed: {err}")
        return {**base, "error": str(err).splitlines()[0][:200]}
    out = {**base, **gaps(d["y_test"], pred, d["a_test"]), **extra,
           "seconds": round(time.perf_counter() - start, 1)}  # fmt: skip
    print(
        f"{job['case']:>10s} {job['method']:>22s} {job.get('constraint', ''):>18s} "
        f"{job['setting']!s:>6s} seed {job['seed']}: acc {out['accuracy']:.4f} "
        f"dp {out['demographic_parity']:.4f} eo {out['equalized_odds']:.4f} "
        f"({out['seconds']:.0f} s)",
        flush=True,
    )
    return out


def _fit(job: dict[str, Any], d: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    import torch

    method, setting, seed = job["method"], job["setting"], job["seed"]
    extra: dict[str, Any] = {}
    if method == "ours":
        from ganforge.fairness import AdversarialFairClassifier

        constraint = "demographic_parity" if job["constraint"] == "none" else job["constraint"]
        model = AdversarialFairClassifier(
            constraint=constraint,
            alpha=setting,
            seed=seed,
            epochs=epochs_for(len(d["x"])),
            batch_size=256 if len(d["x"]) > 5000 else 64,
        )
        model.fit(d["x"], d["y"], sensitive_features=d["a"])
        pred = model.predict(d["x_test"])
    elif method == "logistic":
        from sklearn.linear_model import LogisticRegression

        pred = LogisticRegression(max_iter=3000).fit(d["x"], d["y"]).predict(d["x_test"])
    elif method == "fairlearn-adversarial":
        from fairlearn.adversarial import AdversarialFairnessClassifier

        torch.manual_seed(seed)
        model = AdversarialFairnessClassifier(
            backend="torch",
            predictor_model=[64, "relu", 64, "relu"],
            adversary_model=[32, "relu"],
            constraints=job["constraint"],
            alpha=setting,
            learning_rate=1e-3,
            epochs=epochs_for(len(d["x"])),
            batch_size=256 if len(d["x"]) > 5000 else 64,
            shuffle=True,
            random_state=seed,
        )
        model.fit(d["x"], d["y"], sensitive_features=d["a"])
        pred = np.asarray(model.predict(d["x_test"])).astype(np.int64)
    elif method == "fairlearn-expgrad":
        from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient
        from sklearn.linear_model import LogisticRegression

        moment = {"demographic_parity": DemographicParity, "equalized_odds": EqualizedOdds}[
            job["constraint"]
        ](difference_bound=setting)
        model = ExponentiatedGradient(LogisticRegression(max_iter=3000), moment)
        model.fit(d["x"], d["y"], sensitive_features=d["a"])
        # Its classifier is randomized: predict() draws from the mixture, with this seed.
        pred = model.predict(d["x_test"], random_state=seed)
    elif method == "representation":
        from sklearn.linear_model import LogisticRegression

        from ganforge.fairness import FairRepresentation
        from ganforge.fairness.audit import fresh_adversaries

        rep = FairRepresentation(alpha=setting, seed=seed, epochs=epochs_for(len(d["x"])))
        rep.fit(d["x"], d["y"], sensitive_features=d["a"])
        z, z_test = rep.transform(d["x"]), rep.transform(d["x_test"])
        pred = LogisticRegression(max_iter=3000).fit(z, d["y"]).predict(z_test)
        extra["audit"] = fresh_adversaries(z_test, d["a_test"], seed=seed)
    else:
        raise ValueError(method)
    return pred, extra


def jobs_for(case: str, seeds: int, quick: bool, data: Path) -> list[dict[str, Any]]:
    alphas = ALPHAS[1::2] if quick else ALPHAS
    bounds = BOUNDS[1::2] if quick else BOUNDS
    jobs = [
        {"method": "logistic", "constraint": "none", "setting": 0, "seed": 0},
        *(
            {"method": "ours", "constraint": "none", "setting": 0.0, "seed": s}
            for s in range(seeds)
        ),
    ]
    for constraint in TARGETS:
        jobs += [
            {"method": "ours", "constraint": constraint, "setting": a, "seed": s}
            for a in alphas
            for s in range(seeds)
        ]
        jobs += [
            {"method": "fairlearn-adversarial", "constraint": constraint, "setting": a, "seed": 0}
            for a in FAIRLEARN_ALPHAS[:: 2 if quick else 1]
        ]
        jobs += [
            {"method": "fairlearn-expgrad", "constraint": constraint, "setting": b, "seed": 0}
            for b in bounds
        ]
    if case == "adult-sex":
        jobs += [
            {
                "method": "representation",
                "constraint": "demographic_parity",
                "setting": a,
                "seed": s,
            }
            for a in ((3.0,) if quick else (1.0, 3.0, 10.0))
            for s in range(1 if quick else 3)
        ]
    return [{**j, "case": case, "data": str(data)} for j in jobs]


def key(job: dict[str, Any]) -> tuple:
    return (job["case"], job["method"], job["constraint"], float(job["setting"]), job["seed"])


def read_cache(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per method, constraint and setting: the mean over seeds, with the worst
    seed's accuracy."""
    keyed: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if "error" in r:
            continue
        keyed.setdefault((r["method"], r["constraint"], r["setting"]), []).append(r)
    out = []
    for (method, constraint, setting), group in keyed.items():
        out.append(
            {
                "method": method,
                "constraint": constraint,
                "setting": setting,
                "seeds": len(group),
                **{
                    k: round(float(np.mean([g[k] for g in group])), 4)
                    for k in ("accuracy", "demographic_parity", "equalized_odds")
                },
                "worst_accuracy": round(min(g["accuracy"] for g in group), 4),
            }
        )
    return out


def best_at(pts: list[dict[str, Any]], method: str, gap: str, bound: float) -> float | None:
    """The best mean accuracy of ``method`` among its points with mean ``gap`` <= bound
    (our unconstrained network counts as ours)."""
    fits = [p["accuracy"] for p in pts if _family(p) == method and p[gap] <= bound]
    return max(fits) if fits else None


def _family(p: dict[str, Any]) -> str:
    return "ours" if p["method"] == "ours" else p["method"]


def curve_at(pts: list[dict[str, Any]], gap: str, bound: float, majority: float) -> float:
    """Our best accuracy at a ``gap`` of at most ``bound``: from our points, the trivial
    classifier (always the majority class: every gap 0), and randomised mixtures of two of
    them. A mixture's accuracy is the mixed accuracies and its gaps at most the mixed gaps
    (selection and error rates mix linearly, and a gap is a maximum of their absolute
    differences), so the upper envelope is reachable, as fairlearn's own exponentiated
    gradient reaches its points by mixing."""
    ours = [(p[gap], p["accuracy"]) for p in pts if p["method"] == "ours"] + [(0.0, majority)]
    best = max((a for g, a in ours if g <= bound), default=majority)
    for g1, a1 in ours:
        for g2, a2 in ours:
            if g1 <= bound < g2:
                t = (bound - g1) / (g2 - g1)
                best = max(best, a1 + t * (a2 - a1))
    return best


def dominance(pts: list[dict[str, Any]], majority: float) -> list[dict[str, Any]]:
    """For every fairlearn point and both gaps: our curve (:func:`curve_at`) at the peer's
    gap, against the peer's accuracy."""
    out = []
    for p in pts:
        if not p["method"].startswith("fairlearn"):
            continue
        for gap in TARGETS:
            ours = curve_at(pts, gap, p[gap], majority)
            out.append(
                {
                    "peer": p["method"],
                    "constraint": p["constraint"],
                    "setting": p["setting"],
                    "gap": gap,
                    "peer_gap": p[gap],
                    "peer_accuracy": p["accuracy"],
                    "ours_accuracy": round(ours, 4),
                    "shortfall": round(max(0.0, p["accuracy"] - ours), 4),
                    # within rounding: accuracies are stored to 4 decimals
                    "ours_at_or_above": ours >= p["accuracy"] - 1e-4,
                }
            )
    return out


def plot(case: str, pts: list[dict[str, Any]], majority: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "ours": ("tab:blue", "o"),
        "fairlearn-adversarial": ("tab:orange", "s"),
        "fairlearn-expgrad": ("tab:green", "^"),
        "logistic": ("black", "*"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, gap in zip(axes, TARGETS, strict=True):
        for method, (color, marker) in styles.items():
            for constraint, fill in (
                ("demographic_parity", True),
                ("equalized_odds", False),
                ("none", True),
            ):
                sel = [p for p in pts if p["method"] == method and p["constraint"] == constraint]
                if not sel:
                    continue
                unconstrained = constraint == "none"
                ax.scatter(
                    [p[gap] for p in sel],
                    [p["accuracy"] for p in sel],
                    c=color if fill else "none",
                    edgecolors=color,
                    marker="*" if unconstrained else marker,
                    s=140 if unconstrained else 40,
                    label=f"{method} ({constraint.replace('_', ' ')})",
                )
        ax.axvline(TARGETS[gap], color="grey", ls=":", lw=1)
        ax.axhline(majority, color="red", ls="--", lw=1)
        ax.text(
            ax.get_xlim()[1],
            majority,
            "majority class ",
            color="red",
            ha="right",
            va="bottom",
            fontsize=7,
        )
        ax.set_xlabel(f"{gap.replace('_', ' ')} gap (test)")
        ax.set_ylabel("accuracy (test)")
        ax.grid(alpha=0.3)
    axes[0].set_title(f"{case}: accuracy vs demographic-parity gap")
    axes[1].set_title(f"{case}: accuracy vs equalized-odds gap")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--seeds", type=int, default=5, help="seeds per point of ours (default 5)")
    p.add_argument("--quick", action="store_true", help="one seed, every other setting")
    p.add_argument("--data", type=Path, default=DATA, help="the tabular data folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, help="the report (default: results/fairness.json; "
                   "--quick: results/fairness_quick.json, so a smoke run never overwrites "
                   "the published figures)")  # fmt: skip
    p.add_argument("--cache", type=Path, default=RESULTS / "fairness_runs.jsonl",
                   help="every fit's result, one JSON line each (reused by a rerun)")  # fmt: skip
    args = p.parse_args()
    stem = "fairness_quick" if args.quick else "fairness"
    args.out = args.out or RESULTS / f"{stem}.json"
    from ganforge.io.atomic import atomic_write_bytes

    seeds = 1 if args.quick else args.seeds
    start = time.perf_counter()
    report: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{args.workers} worker(s) of 1 thread",
        "seeds": seeds,
        "targets": TARGETS,
        "cases": {},
    }
    jobs = [j for case in args.cases for j in jobs_for(case, seeds, args.quick, args.data)]
    # The slowest jobs first, so the workers finish together.
    jobs.sort(key=lambda j: j["method"] != "fairlearn-expgrad")
    # Every finished fit is appended to the cache at once; a second run of the same
    # command fits only what is missing (delete the cache to start afresh).
    done = {key(r): r for r in read_cache(args.cache)} if not args.quick else {}
    todo = [j for j in jobs if key(j) not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} fits from {args.cache}; {len(todo)} to run")
    with ProcessPoolExecutor(args.workers) as pool:
        for row in pool.map(run_job, todo):
            done[key(row)] = row
            if not args.quick:
                with open(args.cache, "a") as f:
                    f.write(json.dumps(row) + "\n")
    rows = [done[key(j)] for j in jobs]
    for case in args.cases:
        mine = [r for r in rows if r["case"] == case]
        pts = points([r for r in mine if r["method"] != "representation"])
        failed = [{k: r[k] for k in ("method", "constraint", "setting", "seed", "error")}
                  for r in mine if "error" in r]  # fmt: skip
        majority = mine[0]["majority"]
        ours = [r for r in mine if r["method"] == "ours"]
        report["cases"][case] = {
            "majority_rate": majority,
            "points": pts,
            "at_targets": {
                m: {gap: best_at(pts, m, gap, bound) for gap, bound in TARGETS.items()}
                for m in ("ours", "fairlearn-adversarial", "fairlearn-expgrad")
            },
            "dominance": dominance(pts, majority),
            "collapse": {
                "lowest_accuracy_of_any_seed": min(r["accuracy"] for r in ours),
                "runs": len(ours),
                "any_at_majority_rate": any(r["accuracy"] <= majority + 0.005 for r in ours),
            },
            "failed": failed,
            "representation": [r for r in mine if r["method"] == "representation"],
            "runs": mine,
        }
        plot(case, pts, majority, args.out.parent / f"{stem}_{case}.png")
    report["seconds"] = round(time.perf_counter() - start)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, (json.dumps(report, indent=1) + "\n").encode())
    for case, r in report["cases"].items():
        print(f"\n{case}: at DP <= 0.02 / EO <= 0.03 (best mean accuracy):")
        for m, v in r["at_targets"].items():
            print(f"  {m:>22s}: {v}")
        beaten = [d for d in r["dominance"] if not d["ours_at_or_above"]]
        worst = max((d["shortfall"] for d in beaten), default=0.0)
        peers = ("fairlearn-adversarial", "fairlearn-expgrad")
        by_peer = {m: sum(d["peer"] == m for d in beaten) for m in peers}
        print(
            f"  fairlearn points above our curve: {len(beaten)} of {len(r['dominance'])} "
            f"(by at most {worst:.4f} accuracy; {by_peer})"
        )
        print(f"  collapse: {r['collapse']}")
        for rep in r["representation"]:
            print(
                f"  representation alpha {rep['setting']} seed {rep['seed']}: classifier "
                f"{rep['accuracy']:.4f}, fresh adversaries {rep['audit']['balanced_accuracy']}"
            )
    print(f"\n{report['seconds']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
