"""``ganforge semisupervised`` and ``ganforge classify``: MNIST from a few labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.cli.flags import (
    add_config_flags,
    add_force,
    add_run_options,
    config_overrides,
    formatter,
)

EXAMPLES = """examples:
  ganforge semisupervised --data-dir ../shared/datasets/mnist --labels 100 --seeds 5
  ganforge semisupervised --labels 20 50 100 200 --seeds 5 --out runs/ssl-all
  ganforge semisupervised --labels 100 --seeds 5 --out runs/ssl   # again: continues
  ganforge semisupervised --seeds 2 --first-seed 3 --out runs/ssl-b  # seeds 3, 4 elsewhere
  ganforge semisupervised --combine runs/ssl runs/ssl-b   # one table of both folders
  ganforge semisupervised --epochs 300 --batch-size 100 --device cuda  # the paper's schedule
"""

CLASSIFY_EXAMPLES = """examples:
  ganforge classify runs/semisupervised my_digits/
  ganforge classify runs/semisupervised/models/labels100-seed3.pt my_digits/ --out preds.csv
"""


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.semisupervised import Settings

    ss = sub.add_parser(
        "semisupervised",
        help="MNIST classifier from a few labels with a GAN, beside its baselines",
        epilog=EXAMPLES,
        formatter_class=formatter,
        description="Train the semi-supervised GAN of Salimans et al. (2016) on MNIST with N "
        "labelled images (N/10 per class, chosen by seed) and all 60,000 unlabelled ones, for "
        "each seed; train the same classifier on the N labels alone and on all 60,000; print "
        "test errors out of 10,000 (mean ± std over seeds) beside the published results. "
        "The defaults fit one seed into about 20 minutes on 2 CPU cores. Results are saved "
        "after every seed and each fit checkpoints as it goes: Ctrl-C, then the same command "
        "again, continues exactly.",
    )
    ss.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[100],
        metavar="N",
        help="labelled counts, multiples of 10 (default: 100)",
    )
    ss.add_argument("--seeds", type=int, default=5, help="seeds per count (default: 5)")
    ss.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="number of the first seed, to split seeds across folders or machines (default: 0)",
    )
    ss.add_argument(
        "--combine",
        nargs="+",
        metavar="FOLDER",
        help="train nothing; print the table of these run folders' results together "
        "(seeds split with --first-seed)",
    )
    ss.add_argument(
        "--out",
        "-o",
        default="runs/semisupervised",
        help="run folder (default: runs/semisupervised)",
    )
    add_config_flags(ss.add_argument_group("the recipe"), Settings)
    add_run_options(ss)
    ss.set_defaults(run=run)

    c = sub.add_parser(
        "classify",
        help="label a folder of images with a saved classifier",
        epilog=CLASSIFY_EXAMPLES,
        formatter_class=formatter,
        description="Apply a classifier saved by 'ganforge semisupervised' (or by "
        "SemiSupervisedGAN.save) to every image under FOLDER and write path,label,confidence "
        "rows to a CSV. Sub-folders named by the labels (0/, 1/ ...) also give the accuracy.",
    )
    c.add_argument("model", metavar="MODEL", help="classifier .pt file, or a run folder")
    c.add_argument("folder", metavar="FOLDER", help="folder of images (png, jpg ...)")
    c.add_argument("--out", "-o", help="CSV to write (default: FOLDER-predictions.csv)")
    add_force(c)
    c.set_defaults(run=run_classify)


def run(args: argparse.Namespace) -> int:
    from ganforge.config import merge
    from ganforge.semisupervised import Settings, run_experiment

    if args.combine:
        from ganforge.semisupervised import combine_reports

        print(combine_reports(args.combine).table())
        return 0
    report = run_experiment(
        args.out,
        data_dir=args.data_dir,
        labels=tuple(args.labels),
        seeds=args.seeds,
        first_seed=args.first_seed,
        settings=merge(Settings(), config_overrides(args, Settings)),
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
    )
    print(report.table())
    print(f"wrote {Path(args.out) / 'semisupervised.json'}")
    return 0


def run_classify(args: argparse.Namespace) -> int:
    from ganforge.semisupervised.classify import classify_folder

    print(classify_folder(args.model, args.folder, args.out, args.force).summary())
    return 0
