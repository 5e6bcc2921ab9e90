"""``ganforge attack`` and ``ganforge robust-train``: adversarial examples."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import (
    add_config_flags,
    add_force,
    add_run_options,
    config_overrides,
    formatter,
)

ATTACK_EXAMPLES = """examples:
  ganforge attack --model runs/robust --eps 0.3 --steps 100 --restarts 5
  ganforge attack --model runs/robust --eps 0.1 0.2 0.3 0.4 --steps 20 --restarts 1 -n 1000
  ganforge attack --model model.pt --norm l2 --eps 1 2 3 --out l2-report/
"""

ROBUST_TRAIN_EXAMPLES = """examples:
  ganforge robust-train --data-dir ../shared/datasets/mnist --out runs/robust
  ganforge robust-train --out runs/robust     # again after Ctrl-C: continues exactly
  ganforge robust-train --network convnet --method fast --out runs/fast
  ganforge robust-train --network softmax --method goodfellow2014 --eps 0.25 --out runs/gf
  ganforge robust-train --network mlp --method standard --epochs 5 --out runs/plain
"""


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.data import SPLIT_DATASETS
    from ganforge.robustness import RobustTrainConfig

    a = sub.add_parser(
        "attack",
        help="attack a classifier and measure its robust accuracy, checked for masking",
        epilog=ATTACK_EXAMPLES,
        formatter_class=formatter,
        description="Run random noise, a one-step attack (FGSM), a weak PGD and the full PGD "
        "(STEPS steps x RESTARTS random starts) against a saved classifier at each epsilon on "
        "the test set (inputs in [0, 1]). Prints clean, per-attack and worst-case accuracy and "
        "four gradient-masking checks; writes robustness.json, robustness.png (accuracy "
        "against epsilon) and examples.png (clean / adversarial / difference).",
    )
    a.add_argument("--model", required=True, help="classifier .pt, or a robust-train run folder")
    a.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=[0.3],
        help="epsilons (default: 0.3, an L-inf radius; give L2 radii such as 1 2 3 with "
        "--norm l2); 0 is added",
    )
    a.add_argument("--norm", choices=["linf", "l2"], default="linf", help="(default: linf)")
    a.add_argument("--steps", type=int, default=100, help="PGD steps (default: 100)")
    a.add_argument("--restarts", type=int, default=5, help="PGD random starts (default: 5)")
    a.add_argument("-n", type=int, help="attack only the first N test images (default: all)")
    a.add_argument(
        "--dataset", choices=SPLIT_DATASETS, help="test images (default: the model's own)"
    )
    a.add_argument("--seed", type=int, default=0, help="random starts' seed (default: 0)")
    a.add_argument("--out", "-o", help="report folder (default: next to the model, attack-NORM)")
    add_run_options(a)
    add_force(a)
    a.set_defaults(run=run_attack)

    t = sub.add_parser(
        "robust-train",
        help="train a classifier that resists adversarial examples",
        epilog=ROBUST_TRAIN_EXAMPLES,
        formatter_class=formatter,
        description="Train a classifier on attacked inputs: fast (FGSM from a random start, "
        "Wong et al., 2020), pgd (Madry et al., 2017), goodfellow2014 (half clean, half FGSM "
        "loss) or standard (no attack). After each epoch PGD runs on held-out training images; "
        "the most robust epoch (for standard: the most accurate) is kept as OUT/model.pt. "
        "Ctrl-C saves a checkpoint; the same command again continues exactly.",
    )
    t.add_argument("--config", metavar="YAML", help="settings file; flags override it")
    t.add_argument("--out", "-o", default="runs/robust", help="run folder (default: runs/robust)")
    add_config_flags(t.add_argument_group("the recipe"), RobustTrainConfig)
    add_run_options(t)
    t.set_defaults(run=run_robust_train)


def run_attack(args: argparse.Namespace) -> int:
    from ganforge.robustness.report import attack_saved_model

    report, out = attack_saved_model(
        args.model,
        eps=args.eps,
        out=args.out,
        norm=args.norm,
        steps=args.steps,
        restarts=args.restarts,
        n=args.n,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        download=not args.no_download,
        seed=args.seed,
        progress=not args.quiet,
        force=args.force,
    )
    print(report.table())
    print(f"wrote {out / 'robustness.json'}, robustness.png and examples.png")
    return 0


def run_robust_train(args: argparse.Namespace) -> int:
    from ganforge.config import load_yaml, merge
    from ganforge.robustness import RobustTrainConfig, robust_train

    config = RobustTrainConfig()
    if args.config:
        config = merge(config, load_yaml(args.config))
    config = merge(config, config_overrides(args, RobustTrainConfig))
    result = robust_train(
        args.out,
        config,
        data_dir=args.data_dir,
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
    )
    from ganforge.train import dist

    if dist.is_writer():  # under torchrun, once
        print(result.summary())
    return 0
