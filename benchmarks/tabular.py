"""Our tabular GAN and the ``ctgan`` package side by side (issue 24): same rows, same
epochs, same held-out split, every measure of :mod:`ganforge.tables.evaluate`, wall time;
the independent-columns floor and two halves of the real data beside them.

    python benchmarks/tabular.py --data ../shared/datasets/tabular/adult.csv \\
        --target income-per-year --epochs 300
    python benchmarks/tabular.py --data ../shared/datasets/tabular/german-credit.csv \\
        --target credit --epochs 300
    python benchmarks/tabular.py --data ../shared/datasets/tabular/adult.csv \\
        --target income-per-year --epochs 300 --private 1 10 --skip-ctgan

``ctgan`` (0.12.1) is a benchmark-only dependency: ``pip install ctgan==0.12.1``. Both
train on the same 80% of the rows (seed 0) on 2 CPU threads; everything is measured
against the other 20%. Results go to ``results/tabular.json`` under the data file's name.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganforge.data.table import Table, read_table
from ganforge.io.atomic import atomic_write_bytes
from ganforge.tables import TableConfig, load_table_model, train_table
from ganforge.tables.evaluate import evaluate_table, independent_columns, split

RESULTS = Path(__file__).with_name("results") / "tabular.json"


def ours(
    train: Table, epochs: float, seed: int, private: float | None = None
) -> tuple[Table, float]:
    cfg = TableConfig(epochs=epochs, seed=seed, device="cpu")
    if private is not None:
        cfg = TableConfig(epochs=epochs, seed=seed, device="cpu", private=True, epsilon=private,
                          delta=min(1e-5, 0.1 / len(train)))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run = train_table(cfg, Path(folder) / "run", table=train, progress=True)
        seconds = time.perf_counter() - start
        rows = load_table_model(run.run_dir).sample(len(train), seed=seed + 1)
    return rows, seconds


def peer(train: Table, epochs: int, seed: int) -> tuple[Table, float]:
    """The ctgan package at its defaults, on the same rows (text columns as categories,
    missing values as their own category, as its documentation advises)."""
    from ctgan import CTGAN

    frame = train.to_frame()
    discrete = [c.name for c in train.columns if c.kind in ("categorical", "boolean")]
    for c in train.columns:
        if c.kind not in ("categorical", "boolean"):
            frame[c.name] = train.values[c.name]
    torch.manual_seed(seed)
    model = CTGAN(epochs=epochs, verbose=False)
    start = time.perf_counter()
    model.fit(frame, discrete)
    seconds = time.perf_counter() - start
    out = model.sample(len(train))
    text = out.astype(str)
    for c in train.columns:
        if c.kind == "integer":
            text[c.name] = np.round(out[c.name].astype(float)).astype(np.int64).astype(str)
    kinds = {c.name: c.kind for c in train.columns}
    table = read_table(text, kinds)
    table.columns = train.columns  # the training categories, for the measures
    return table, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--epochs", type=float, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--private", type=float, nargs="*", default=[], metavar="EPS")
    parser.add_argument("--skip-ctgan", action="store_true")
    parser.add_argument("--only-private", action="store_true", help="just the --private runs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    table = read_table(args.data)
    train, holdout = split(table, 0.2, 0)
    results: dict = {"data": args.data, "rows": len(table), "epochs": args.epochs,
                     "machine": platform.processor() or platform.machine(),
                     "threads": torch.get_num_threads()}  # fmt: skip

    def measure(name: str, rows: Table, seconds: float | None = None) -> None:
        report = evaluate_table(train, holdout, rows, args.target, args.seed)
        report["seconds"] = None if seconds is None else round(seconds, 1)
        results[name] = report
        q, e = report["quality"], report["ml_efficacy"]["trained_on_synthetic"]
        print(f"{name:>22s}: quality {q['score']:.3f} (shapes {q['column_shapes']:.3f}, pairs "
              f"{q['column_pair_trends']:.3f}), trees {e['boosting']:.4f}, detection "
              f"{report['detection_auc']:.3f}, DCR {report['privacy']['dcr_synthetic_median']:.3f}"
              f", copies {report['privacy']['exact_copies']:.4f}"
              + (f", {seconds:.0f} s" if seconds else ""), flush=True)  # fmt: skip

    half, _ = split(train, 0.5, 1)
    if not args.only_private:
        measure("real (train half)", half)
        measure("independent columns", independent_columns(train, len(train), args.seed))
        rows, seconds = ours(train, args.epochs, args.seed)
        measure("ganforge", rows, seconds)
    if not (args.skip_ctgan or args.only_private):
        rows, seconds = peer(train, int(args.epochs), args.seed)
        measure("ctgan 0.12.1", rows, seconds)
    for eps in args.private:
        rows, seconds = ours(train, args.epochs, args.seed, private=eps)
        measure(f"ganforge private eps={eps:g}, {args.epochs:g} epochs", rows, seconds)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = Path(args.data).stem
    saved[key] = {**saved.get(key, {}), **results}
    atomic_write_bytes(RESULTS, (json.dumps(saved, indent=2) + "\n").encode())
    print(f"wrote {RESULTS} [{key}]")


if __name__ == "__main__":
    main()
