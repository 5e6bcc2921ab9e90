"""``ganforge fair train|audit``: fairness through an adversary, on a CSV table."""

from __future__ import annotations

import argparse
import warnings

from ganforge.cli.flags import add_config_flags, add_json_out, formatter

EXAMPLES = """examples:
  ganforge fair train --data adult.csv --target income-per-year --sensitive sex \\
      --constraint demographic_parity --out runs/fair-adult
  ganforge fair train --data german-credit.csv --target credit --sensitive 'age>=25' \\
      --constraint equalized_odds --out runs/fair-german
  ganforge fair train --data adult.csv --target income-per-year --sensitive sex \\
      --model representation --dim 8 --out runs/fair-rep
  ganforge fair audit runs/fair-adult
"""

DESCRIPTION = """\
train  fit a classifier (or an encoder, --model representation) against an adversary that
       tries to recover the sensitive group from its output (Zhang et al. 2018; LAFTR). The
       target and the sensitive column are left out of the features; --holdout of the rows
       (0.3) are held out. The run folder gets model.pt, report.json (held-out accuracy,
       fairlearn's demographic-parity and equalized-odds gaps, rates per group, the
       fresh-adversary audit) and fairness.png.
audit  train fresh adversaries (logistic regression, boosted trees, an MLP) on the frozen
       outputs of the held-out rows and report their balanced accuracy at recovering the
       group, beside chance (or, for equalized odds, the label alone).
"""


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.fairness.runner import FairConfig

    p = sub.add_parser(
        "fair",
        help="fair classifiers and representations through an adversary, and their audit",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    what = p.add_subparsers(dest="fair_command", metavar="train|audit", required=True)
    t = what.add_parser(
        "train", help="fit a fair model of a CSV table", epilog=EXAMPLES,
        formatter_class=formatter,
    )  # fmt: skip
    t.add_argument("--out", "-o", required=True, metavar="DIR", help="a new run folder")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_flags(t.add_argument_group("the fair model"), FairConfig)
    t.set_defaults(run=run_train)
    a = what.add_parser(
        "audit", help="fresh adversaries against a fair run's held-out outputs",
        epilog=EXAMPLES, formatter_class=formatter,
    )  # fmt: skip
    a.add_argument("run_dir", metavar="RUN")
    a.add_argument("--data", metavar="FILE.csv", help="the CSV (default: the run's own)")
    add_json_out(a)
    a.set_defaults(run=run_audit)


def run_train(args: argparse.Namespace) -> int:
    from ganforge.cli.flags import config_overrides
    from ganforge.config import merge
    from ganforge.fairness.runner import FairConfig, fair_train, format_report

    cfg = merge(FairConfig(), config_overrides(args, FairConfig))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what a warning would say is printed below
        report = fair_train(cfg, args.out, progress=not args.quiet)
    print(format_report(report))
    if report["uninformative"]:
        print(
            "note: the predictions are no better than always predicting the majority class; "
            "lower --alpha to keep accuracy"
        )
    print(f"run folder {args.out} (report.json, fairness.png, model.pt)")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from ganforge.cli.flags import check_json_out, write_json_out
    from ganforge.fairness.runner import fair_audit, format_report

    check_json_out(args)
    report = fair_audit(args.run_dir, args.data)
    print(format_report(report))
    write_json_out(args, report)
    return 0
