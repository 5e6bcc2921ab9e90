"""``ganforge evaluate``: metrics of samples beside their real-data floors."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.cli.flags import add_force, formatter, refuse_existing
from ganforge.errors import GanforgeError

EXAMPLES = """examples:
  ganforge evaluate runs/demo --data-dir ../shared/datasets/mnist
  ganforge evaluate samples.npz --no-parzen --out report.json
  ganforge evaluate runs/adult --real held-out.csv --target income   # a table run
"""


def add(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser(
        "evaluate",
        help="measure samples against MNIST, beside real-data floors",
        epilog=EXAMPLES,
        formatter_class=formatter,
        description="FID and KID on the reference MNIST network's features, precision/recall "
        "(k=3), classifier score, class coverage, memorization and the 2014 paper's Parzen "
        "log-likelihood, each beside the same metric for 10,000 real training images. "
        "A Stacked MNIST generator gets mode coverage instead: modes covered of 1000 and "
        "KL to uniform, each channel read by the reference network, beside real stacked "
        "images.",
    )
    e.add_argument("source", metavar="RUN_DIR|CHECKPOINT|IMAGES.npz|FOLDER")
    e.add_argument(
        "-n",
        "--num",
        type=int,
        help="samples from a generator (default: 10,000; 26,000 for Stacked MNIST, as the "
        "papers that report it)",
    )
    e.add_argument("--data-dir", metavar="DIR", help="MNIST IDX folder (default: as for train)")
    e.add_argument("--no-parzen", action="store_true", help="skip the Parzen estimate")
    e.add_argument(
        "--inception",
        metavar="PTH",
        help="also FID/KID/IS on Inception-v3, from pytorch-fid's pt_inception-2015-12-05 file",
    )
    e.add_argument(
        "--out",
        "-o",
        help="JSON report (default: RUN_DIR/evaluation.json or <source>-evaluation.json)",
    )
    add_force(e)
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ganforge.io.atomic import atomic_write_bytes
    from ganforge.metrics.evaluate import evaluate, format_table

    if args.num is not None and args.num < 2:
        raise GanforgeError(f"--num must be at least 2, got {args.num}")
    out = _out(args)
    refuse_existing(out, args.force)  # before minutes of measuring, not after
    result, floor = evaluate(
        args.source, args.data_dir, args.num, not args.no_parzen, inception=args.inception
    )
    print(format_table(result, floor))
    report = {"source": args.source, "samples": result, "real_floor": floor}
    atomic_write_bytes(out, json.dumps(report, indent=2).encode())
    print(f"wrote {out}")
    return 0


def _out(args: argparse.Namespace) -> Path:
    source = Path(args.source)
    if args.out:
        return Path(args.out)
    if (source / "checkpoints").is_dir():
        return source / "evaluation.json"
    return source.with_name(source.stem + "-evaluation.json")
