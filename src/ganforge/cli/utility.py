"""``ganforge utility``: how useful labelled synthetic MNIST is (the DP papers' protocol)."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import (
    add_json_out,
    add_run_options,
    check_json_out,
    formatter,
    write_json_out,
)

# Published at epsilon = 10, delta = 1e-5 (DPDM, Dockhorn et al., Table 1; Bie et al., 2023).
PUBLISHED = (
    ("DP-CGAN", 63.0, 179.2), ("GS-WGAN", 80.0, 61.3), ("DataLens", 80.66, 173.5),
    ("G-PATE", 80.92, 150.6), ("DP-MERF", 82.1, 116.3), ("DP-Sinkhorn", 83.2, 48.4),
    ("DP-SGD GAN (Bie et al.)", 95.0, 13.0), ("DPDM (diffusion)", 98.1, 5.0),
)  # fmt: skip


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "utility",
        help="train a classifier on synthetic MNIST only, test it on the real test set",
        description="The utility protocol of the differentially private generative-model "
        "papers: a fixed CNN trained on the synthetic images and labels alone (the last 5,000 "
        "pick the epoch), its accuracy on the real MNIST test set; beside it FID and KID on "
        "the reference features, class coverage and how often the reference network reads "
        "each image as its label. Published figures are FID on Inception features, ours on "
        "the reference network's: compare accuracies, not FIDs, across the table.",
        epilog="example:\n  ganforge utility synth/ --data-dir ../shared/datasets/mnist",
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="SYNTH", help="a folder from ganforge synthesize, or its .npz")
    p.add_argument("--epochs", type=int, default=10, help="classifier epochs (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="classifier seed (default: 0)")
    add_json_out(p)
    add_run_options(p, device=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_json_out(args)
    from ganforge.metrics.downstream import utility
    from ganforge.synthesize import load_synthetic

    images, labels = load_synthetic(args.source)
    result = utility(
        images, labels, args.data_dir, args.epochs, args.seed, not args.no_download,
        not args.quiet,
    )  # fmt: skip
    print(f"{'published at epsilon 10':26}{'accuracy':>9}  {'FID':>7}")
    for name, acc, fid in PUBLISHED:
        print(f"{name:26}{acc:8.1f}%  {fid:7.1f} (Inception)")
    print(
        f"{'this data':26}{100 * result['downstream_accuracy']:8.2f}%  {result['fid']:7.2f} "
        f"(reference net); {result['classes_covered']} classes covered, label agreement "
        f"{100 * result['label_agreement']:.1f}%"
    )
    write_json_out(args, result)
    return 0
