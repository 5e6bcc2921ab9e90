"""``ganforge train``: a GAN into a run folder, or ``--resume`` one."""

from __future__ import annotations

import argparse
import sys

from ganforge.cli.flags import add_config_flags, config_overrides, formatter
from ganforge.config import RunConfig, load_yaml, merge
from ganforge.errors import GanforgeError

EXAMPLES = """examples:
  ganforge train --data-dir ../shared/datasets/mnist --out runs/demo
  ganforge train --network mlp2014 --steps 20000 --batch-size 100
  ganforge train --network dcgan-cond --epochs 3 --out runs/cond
  ganforge train --loss hinge --spectral-norm --out runs/hinge
  ganforge train --loss relativistic --r1 0.1 --r2 0.1 --augment translation,cutout
  ganforge train --loss wasserstein --gp 10 --k 5 --optimizer adam --lr 1e-4
  ganforge train --dataset folder --data-dir ~/faces --image-size 64 --channels 3
  ganforge train --config my.yaml --seed 3
  ganforge train --dataset table --data adult.csv --out runs/adult   # a CSV table; its
      options: ganforge train --dataset table --help
  ganforge train --resume runs/demo --steps 3000     # continue to step 3000
  ganforge train --nproc 2 --out runs/two            # 2 processes, same run as on 1
  ganforge train --private --epsilon 10 --network dcgan-cond-dp --steps 10000 --k 5 \
      --adaptive 0.6 --out runs/private               # differentially private
  torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \
      -m ganforge train --out runs/big                # several machines
"""
TITLES = {"data": "data", "model": "model", "loss": "loss and penalties",
          "optim": "optimisation", "train": "running",
          "privacy": "differential privacy (--private)"}  # fmt: skip


def add(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser(
        "train",
        help="train a GAN into a run folder",
        epilog=EXAMPLES,
        description="Train a generator and a discriminator against each other. The run folder "
        "gets manifest.json, config.yaml, checkpoints/, samples/, metrics.jsonl, tb/ "
        "(TensorBoard) and losses.png. Ctrl-C saves a checkpoint; --resume continues exactly.",
        formatter_class=formatter,
    )
    t.add_argument("--config", metavar="YAML", help="config file; flags override it")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/<data>-<network>-<time>)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train on N processes of this machine (one per GPU, or CPU processes): "
        "--batch-size is the global batch, split N ways, so the run is the one a single "
        "process trains (default: 1; under torchrun, its processes)",
    )
    add_config_flags(t, RunConfig, TITLES)
    t.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ganforge.train import dist

    started = dist.requested_world_size()
    if args.nproc is not None and started > 1 and args.nproc != started:
        raise GanforgeError(
            f"--nproc {args.nproc} under torchrun, which started {started} processes; drop --nproc"
        )
    if args.nproc is not None and args.nproc != 1 and started == 1:
        return _launch(args)
    return _train(args)


def _launch(args: argparse.Namespace) -> int:
    """Start ``args.nproc`` processes running this same command (without --nproc, with the
    run folder fixed, so that every process names the same one)."""
    from pathlib import Path

    from ganforge.train import default_run_dir, dist
    from ganforge.train.checkpoint import LAST, load_checkpoint

    argv = _without_nproc(args.argv)
    out = args.resume or args.out
    if out is None:
        cfg = merge(RunConfig(), load_yaml(args.config)) if args.config else RunConfig()
        out = str(default_run_dir(merge(cfg, config_overrides(args, RunConfig))))
        argv += ["--out", out]
    try:
        return dist.launch(["-m", "ganforge", *argv], args.nproc)
    except GanforgeError as err:
        last = Path(out) / LAST
        if last.is_file():
            step = load_checkpoint(last)["step"]
            raise GanforgeError(
                f"{err}. The checkpoint of step {step} is kept; continue with: "
                f"ganforge train --resume {out} --nproc {args.nproc}"
            ) from None
        raise


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _train(args: argparse.Namespace) -> int:
    from ganforge.train import dist, resume, train

    overrides = config_overrides(args, RunConfig)
    if args.resume:
        if args.config or args.out:
            raise GanforgeError(
                "--resume continues a run as it was configured; drop --config/--out"
            )
        result = resume(args.resume, overrides, progress=not args.quiet)
    else:
        cfg = RunConfig()
        if args.config:
            cfg = merge(cfg, load_yaml(args.config))
        cfg = merge(cfg, overrides)
        result = train(cfg, args.out, progress=not args.quiet)
    where = result.run_dir
    if not dist.is_writer():
        return 130 if result.interrupted else 0
    world = dist.world_size()
    if result.interrupted:
        print(
            f"interrupted at step {result.steps}; checkpoint saved. Continue with: "
            f"ganforge train --resume {where}" + (f" --nproc {world}" if world > 1 else ""),
            file=sys.stderr,
        )
        return 130
    print(
        f"trained to step {result.steps} in {result.seconds:.1f} s "
        f"({result.images_per_second:.0f} images/s); samples: {where / 'samples.png'}"
    )
    return 0
