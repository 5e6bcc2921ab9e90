"""``ganforge audit``: membership inference against a GAN run."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import add_json_out, check_json_out, formatter, write_json_out


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit",
        help="membership-inference attacks against a GAN run (is its training data exposed?)",
        description="Score N training records (members) and N test records (non-members) "
        "with a white-box attack (the discriminator's logit, LOGAN) and a black-box one "
        "(distance to the nearest of M generated samples); report ROC AUC (0.5: chance) and "
        "the true-positive rate at 1%% false positives. A private run should stay near chance.",
        epilog="example:\n  ganforge audit runs/private -n 1000",
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="RUN", help="run folder or checkpoint file")
    p.add_argument("-n", type=int, default=1000, help="candidates per side (default: 1000)")
    p.add_argument("--samples", type=int, default=10_000, help="generated samples (default: 10000)")
    p.add_argument("--seed", type=int, default=0, help="which candidates (default: 0)")
    p.add_argument("--data-dir", metavar="DIR", help="the data (default: the run's)")
    add_json_out(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_json_out(args)
    from ganforge.privacy.audit import audit_run

    result = audit_run(args.source, args.n, args.samples, args.seed, args.data_dir)
    p = result["privacy"]
    private = f"private (epsilon {p['epsilon_spent']:.3g})" if p else "not private"
    records = result["training_records"]
    print(f"{args.source}: step {result['step']}, {records:,} training records, {private}")
    for name, key in (("white-box (D logit)", "white_box_logan"),
                      ("black-box (distance)", "black_box_distance")):  # fmt: skip
        r = result[key]
        if r is None:
            print(f"  {name:22} n/a (a cluster-conditioned critic)")
            continue
        print(f"  {name:22} AUC {r['auc']:.3f}   TPR at 1% FPR {100 * r['tpr_at_1pct_fpr']:.1f}%")
    write_json_out(args, result)
    return 0
