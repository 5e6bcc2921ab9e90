"""``ganforge inside RUN layers``: looking inside a trained generator."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import formatter

EXAMPLES = """examples:
  ganforge inside runs/demo layers --seed 0 1 2 --out inside/
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inside",
        help="look inside a trained generator, layer by layer",
        epilog=EXAMPLES,
        description="'layers': for each seed a PNG strip, one row per generator layer "
        "(shallow to deep): the image decoded from that layer by a linear probe fitted on "
        "the generator's own samples, then its most active channels' maps; the last row is "
        "the image. layers.json gives each layer's shape and the probe's held-out error.",
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("what", choices=("layers",))
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="latent seeds (default 0)")
    p.add_argument("--class", dest="class_label", type=int, metavar="C", help="conditional: C")
    p.add_argument("--maps", type=int, default=6, help="channel maps per layer (default 6)")
    p.add_argument("--samples", type=int, default=2000, help="probe samples (default 2000)")
    p.add_argument("--out", "-o", required=True, help="a new folder for the pictures")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    p.set_defaults(run=run_inside)


def run_inside(args: argparse.Namespace) -> int:
    from ganforge.inside import render_layers

    report = render_layers(
        args.source, args.out, args.seed, args.maps, args.samples,
        class_label=args.class_label, device=args.device,
    )  # fmt: skip
    for row in report["layers"]:
        print(
            f"{row['layer']:>10s} {str(tuple(row['shape'])):>16s}  probe MSE {row['probe_mse']:.4f}"
        )
    print(f"wrote {len(args.seed)} layer strip(s) and layers.json to {args.out}")
    return 0
