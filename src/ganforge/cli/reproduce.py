"""``ganforge reproduce``: a published experiment, our numbers beside the paper's."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ganforge.cli.flags import add_run_options, formatter

EXAMPLES = """examples:
  ganforge reproduce goodfellow2014 --data-dir ../shared/datasets/mnist
  ganforge reproduce goodfellow2014 --steps 20000 --out runs/gf2014-long
  ganforge reproduce goodfellow2014 --out runs/gf2014   # again: continues or re-measures
"""


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.reproduce import REPRODUCTIONS

    r = sub.add_parser(
        "reproduce",
        help="re-run a published experiment and print our numbers beside the paper's",
        epilog=EXAMPLES,
        formatter_class=formatter,
        description="Train a paper's model with ganforge, measure it with the paper's protocol "
        "and print the paper's table beside ours and the real-data floor. Known: "
        + "; ".join(f"{n}: {REPRODUCTIONS.get(n).description}" for n in REPRODUCTIONS.names()),
    )
    r.add_argument("name", metavar="NAME", help="one of: " + ", ".join(REPRODUCTIONS.names()))
    r.add_argument("--out", "-o", help="run folder (default: runs/NAME)")
    r.add_argument("--steps", type=int, help="generator steps (default: the recipe's)")
    r.add_argument("-n", "--num", type=int, default=10_000, help="samples to measure (10000)")
    add_run_options(r)
    r.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.reproduce import REPRODUCTIONS

    reproduction = REPRODUCTIONS.get(args.name)
    options: dict[str, Any] = {"steps": args.steps} if args.steps is not None else {}
    result = reproduction.run(
        args.out or Path("runs") / args.name,
        data_dir=args.data_dir,
        samples=args.num,
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
        **options,
    )
    print(result.summary())
    return 0
