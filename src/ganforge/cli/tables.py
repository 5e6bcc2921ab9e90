"""Tables from the command line: ``ganforge train --dataset table --data FILE.csv``,
``ganforge synthesize TABLE_RUN -n N --out rows.csv`` and ``ganforge evaluate TABLE_RUN
--real HELD_OUT.csv``. :func:`route` sends these to the hidden commands below, so that the
image commands keep their own options."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.cli.flags import add_config_flags, formatter

EXAMPLES = """examples:
  ganforge train --dataset table --data adult.csv --out runs/adult --epochs 100
  ganforge train --dataset table --data adult.csv --private --epsilon 1 --out runs/adult-dp1
  ganforge synthesize runs/adult -n 10000 --out synthetic.csv
  ganforge synthesize runs/adult -n 500 --where sex=Female --out women.csv
  ganforge evaluate runs/adult --real held-out.csv --target income-per-year
"""


def route(argv: list[str]) -> list[str]:
    """``train --dataset table``, ``synthesize`` and ``evaluate`` of a table run."""
    if not argv:
        return argv
    if argv[0] == "train":
        for i, arg in enumerate(argv):
            if arg == "--dataset=table" or (
                arg == "--dataset" and argv[i + 1 : i + 2] == ["table"]
            ):
                width = 1 if "=" in arg else 2
                return ["train-table", *argv[1:i], *argv[i + width :]]
    if argv[0] in ("synthesize", "evaluate") and len(argv) > 1 and _is_table_run(argv[1]):
        return [f"{argv[0]}-table", *argv[1:]]
    return argv


def _is_table_run(path: str) -> bool:
    from ganforge.io.rundir import read_manifest

    try:
        manifest = read_manifest(path) if Path(path).is_dir() else None
    except Exception:  # the command itself reports an unreadable folder
        return False
    return bool(manifest) and manifest.get("kind") == "table"


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.tables.recipe import TableConfig

    t = sub.add_parser(
        "train-table",  # typed as "train --dataset table" (see route); unlisted
        prog="ganforge train --dataset table",
        epilog=EXAMPLES,
        description="Train CTGAN's method (mode-specific normalization, conditional vector "
        "with training-by-sampling,\nPacGAN packing, WGAN-GP) on a CSV file. Column kinds "
        "are inferred (override with --column-kinds);\nmissing values are kept as a state of "
        "their own. The run folder gets schema.json, sample.csv,\ncheckpoints/, metrics.jsonl "
        "and losses.png (and privacy.json with --private). The same command\ncontinues an "
        "interrupted run.",
        formatter_class=formatter,
    )
    t.add_argument("--out", "-o", required=True, metavar="DIR", help="the run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(t.add_argument_group("the tabular GAN"), TableConfig)
    t.set_defaults(run=run_train)

    s = sub.add_parser(
        "synthesize-table",
        prog="ganforge synthesize",
        epilog=EXAMPLES,
        description="Write N synthetic rows of a table run as CSV: the training file's "
        "columns, order, types and\nspelling of missing values. --where COLUMN=VALUE asks "
        "the generator for rows with that value.",
        formatter_class=formatter,
    )
    s.add_argument("source", metavar="TABLE_RUN")
    s.add_argument("-n", type=int, default=10_000, help="rows (default: 10000)")
    s.add_argument("--out", "-o", required=True, metavar="FILE.csv")
    s.add_argument("--where", metavar="COLUMN=VALUE", help="only rows with this value")
    s.add_argument("--seed", type=int, default=0, help="(default: 0)")
    s.add_argument("--force", action="store_true", help="replace an existing file")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    s.set_defaults(run=run_synthesize)

    e = sub.add_parser(
        "evaluate-table",
        prog="ganforge evaluate",
        epilog=EXAMPLES,
        description="Measure a table run's synthetic rows against real rows it never saw "
        "(--real): SDMetrics quality\n(column shapes, pair trends), machine-learning "
        "efficacy for --target (boosted trees and logistic\nregression trained on synthetic "
        "rows vs on the training rows), detection AUC, distance to the\nclosest training "
        "record and exact copies; beside rows drawn column by column from the training\n"
        "data (the floor) and the training rows themselves.",
        formatter_class=formatter,
    )
    e.add_argument("source", metavar="TABLE_RUN")
    e.add_argument("--real", required=True, metavar="FILE.csv", help="held-out real rows")
    e.add_argument(
        "--train", metavar="FILE.csv", help="the training rows (default: the run's --data)"
    )
    e.add_argument("--target", metavar="COLUMN", help="categorical column for ML efficacy")
    e.add_argument("-n", type=int, help="synthetic rows (default: as many as --real)")
    e.add_argument("--out", "-o", help="JSON report (default: RUN/evaluation.json)")
    e.add_argument("--force", action="store_true", help="replace an existing report")
    e.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from ganforge.cli.flags import config_overrides
    from ganforge.config import merge
    from ganforge.tables import TableConfig, train_table

    cfg = merge(TableConfig(), config_overrides(args, TableConfig))
    print(train_table(cfg, args.out, progress=not args.quiet).summary())
    return 0


def _where(text: str | None) -> dict[str, str]:
    from ganforge.errors import GanforgeError

    if not text:
        return {}
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise GanforgeError(f"--where takes COLUMN=VALUE, got {text!r}")
    return {name: value}


def run_synthesize(args: argparse.Namespace) -> int:
    from ganforge.tables import synthesize_table

    table = synthesize_table(args.source, args.n, args.out, args.seed, _where(args.where),
                             args.force, args.device)  # fmt: skip
    print(f"wrote {len(table):,} rows of {len(table.columns)} columns to {args.out}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ganforge.cli.flags import refuse_existing
    from ganforge.io.atomic import atomic_write_json
    from ganforge.tables.evaluate import evaluate_run, format_report

    out = Path(args.out) if args.out else Path(args.source) / "evaluation.json"
    refuse_existing(out, args.force)
    report = evaluate_run(args.source, args.real, args.train, args.target, args.n)
    print(format_report(report))
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0
