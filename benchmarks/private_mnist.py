"""Differentially private synthetic MNIST: utility at a privacy budget, and the audit.

    python benchmarks/private_mnist.py --data-dir ../shared/datasets/mnist train --epsilon 10
    python benchmarks/private_mnist.py --data-dir ../shared/datasets/mnist measure RUN [RUN ...]
    python benchmarks/private_mnist.py --data-dir ../shared/datasets/mnist overfit

``train``: ``ganforge train --private`` with the recipe below (the ``dcgan-cond-dp`` family,
expected batch 128, Bie et al.'s adaptive discriminator steps from k = 5 at threshold 0.6)
for the given epsilon, sized by ``--d-steps`` (the discriminator steps the budget is spent
over); ``--no-private`` trains the same recipe without privacy for the same steps.
``measure``: for each run, 60,000 synthetic labelled digits (``ganforge synthesize``), the
utility protocol on them (``ganforge utility``: a CNN trained on them alone, real test
accuracy; FID on the reference features; class coverage) and the membership audit
(``ganforge audit``), with training time and epsilon spent; ``--curve`` also measures the
run's checkpoints copied into a folder as it trained (accuracy against epsilon spent).
``overfit``: a non-private conditional DCGAN trained long on 256 images, then audited: the
attack must succeed clearly there.

Results go to ``benchmarks/results/private_mnist.json`` (merged by run name).
A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ganforge.config import RunConfig, merge
from ganforge.io.atomic import atomic_write_bytes
from ganforge.metrics.downstream import utility
from ganforge.privacy.audit import audit_run
from ganforge.synthesize import synthesize
from ganforge.train import train
from ganforge.train.checkpoint import load_checkpoint

RESULTS = Path(__file__).with_name("results") / "private_mnist.json"


def recipe(data_dir: str, epsilon: float | None, d_steps: int, k: int, seed: int) -> RunConfig:
    private = epsilon is not None
    return merge(
        RunConfig(),
        {
            "data": {"root": data_dir},
            "model": {"network": "dcgan-cond-dp"},
            "train": {"steps": d_steps // k, "k": k, "seed": seed, "log_every": 50,
                      "checkpoint_every": 200, "sample_every": 500},
            "privacy": {"enabled": private, "epsilon": epsilon or 10.0,
                        "adaptive": 0.6 if private else None},
        },
    )  # fmt: skip


def save(key: str, value: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = value
    atomic_write_bytes(RESULTS, (json.dumps(results, indent=2) + "\n").encode())


def measure(
    run: Path, data_dir: str, checkpoint: Path | None = None, n: int = 60_000, epochs: int = 10
) -> dict:
    source = checkpoint or run
    state = load_checkpoint(source, kind="gan")
    folder = Path("/tmp") / f"synth-{run.name}-{state['step']}"
    made = synthesize(source, n, folder, force=True, command="benchmarks/private_mnist.py")
    start = time.perf_counter()
    useful = utility(made.images, made.labels, data_dir, epochs=epochs)
    useful.pop("downstream_curve")
    out = {
        "step": int(state["step"]),
        "images": n,
        "epochs": epochs,
        "training_minutes": float(state.get("seconds", 0)) / 60,
        "privacy": made.datasheet["privacy"],
        **useful,
        "utility_seconds": time.perf_counter() - start,
    }
    if checkpoint is None:
        out["audit"] = audit_run(source, n=1000, samples=10_000)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True)
    sub = p.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train")
    t.add_argument("--epsilon", type=float, default=10.0)
    t.add_argument("--no-private", action="store_true")
    t.add_argument("--d-steps", type=int, default=50_000)
    t.add_argument("--k", type=int, default=5)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True)
    m = sub.add_parser("measure")
    m.add_argument("runs", nargs="+", type=Path)
    m.add_argument("--curve", type=Path, help="also every checkpoint file in this folder")
    m.add_argument("--curve-only", action="store_true")
    sub.add_parser("overfit").add_argument("--out", default="runs/overfit")
    args = p.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"

    if args.what == "train":
        epsilon = None if args.no_private else args.epsilon
        result = train(recipe(args.data_dir, epsilon, args.d_steps, args.k, args.seed), args.out)
        print(f"trained {args.out} in {result.seconds / 60:.1f} min")
    elif args.what == "measure":
        for run in args.runs:
            row = {"machine": machine}
            if not args.curve_only:
                row.update(measure(run, args.data_dir))
            if args.curve:  # a cheaper protocol per point: 10,000 images, 3 epochs
                row["curve"] = [
                    measure(run, args.data_dir, ckpt, n=10_000, epochs=3)
                    for ckpt in sorted(args.curve.glob("*.pt"))
                ]
                key = f"{run.name}-curve" if args.curve_only else run.name
                save(key, row)
                continue
            save(run.name, row)
            print(json.dumps(row, indent=2))
    else:
        cfg = merge(
            RunConfig(),
            {"data": {"root": args.data_dir, "limit": 256},
             "model": {"network": "dcgan-cond"},
             "train": {"steps": 3000, "batch_size": 64, "sample_every": 1000}},
        )  # fmt: skip
        result = train(cfg, args.out)
        audit = audit_run(args.out, n=256, samples=10_000)
        save("overfit", {"training_minutes": result.seconds / 60, "audit": audit,
                         "machine": machine})  # fmt: skip
        print(json.dumps(audit, indent=2))


if __name__ == "__main__":
    main()
