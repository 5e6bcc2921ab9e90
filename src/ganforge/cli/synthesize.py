"""``ganforge synthesize``: a labelled synthetic dataset (npz, IDX pair, datasheet)."""

from __future__ import annotations

import argparse
import shlex

from ganforge.cli.flags import formatter

EXAMPLES = """examples:
  ganforge synthesize runs/private -n 60000 --out synth/
  ganforge utility synth/ --data-dir ../shared/datasets/mnist
  ganforge synthesize runs/adult -n 10000 --out rows.csv     # a table run: CSV rows
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synthesize",
        help="write a labelled synthetic dataset from a class-conditional run",
        epilog=EXAMPLES,
        description="Draw N images, an equal share of each class, from a run's averaged "
        "generator. The folder gets synthetic.npz (uint8 NHWC images, labels), an MNIST-style "
        "IDX pair for 28x28 grayscale data, and datasheet.json/.md: the privacy guarantee, "
        "the training data, the date and this command.",
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("-n", type=int, default=60_000, help="number of images (default: 60000)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (must be new)")
    p.add_argument("--seed", type=int, default=0, help="noise and label order (default: 0)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.synthesize import synthesize

    command = "ganforge " + shlex.join(args.argv)
    out = synthesize(
        args.source, args.n, args.out, args.seed, args.device, command, args.force, not args.quiet
    )
    p = out.datasheet["privacy"]
    guarantee = (
        f"epsilon {p['epsilon_spent']:.3g}, delta {p['delta']:g}" if isinstance(p, dict) else "none"
    )
    print(f"wrote {len(out.labels):,} labelled images to {out.folder} (privacy: {guarantee})")
    return 0
