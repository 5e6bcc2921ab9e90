"""Training throughput (real images through the discriminator per second) of each network.

    python benchmarks/throughput.py --data-dir ../shared/datasets/mnist [--steps 60] [--device cpu]

A benchmark, not a test: it prints one row per network for the machine it runs on.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

from ganforge.config import RunConfig, merge
from ganforge.data import load_mnist
from ganforge.nets import NETWORKS
from ganforge.train import Trainer


def measure(network: str, data, steps: int, warmup: int, device: str, batch_size: int | None):
    overrides = {"model": {"network": network}, "train": {"device": device}}
    if batch_size:
        overrides["train"]["batch_size"] = batch_size
    cfg = merge(RunConfig(), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, data=data, progress=False)
        engine = trainer.engine
        for _ in range(warmup):
            engine.train_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            engine.train_step()
        engine.stats.read()  # waits for the device
        seconds = time.perf_counter() - start
    t = trainer.cfg.train
    return steps * t.batch_size * t.k / seconds, seconds / steps, t.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    parser.add_argument("--steps", type=int, default=60, help="timed generator steps per network")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, help="default: the training default")
    parser.add_argument("--networks", nargs="*", default=NETWORKS.names())
    args = parser.parse_args()
    data = load_mnist(args.data_dir, "train", download=False)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
    )
    print(f"{'network':<14} {'batch':>5} {'images/s':>10} {'ms/step':>8}")
    for name in args.networks:
        rate, per_step, bs = measure(
            name, data, args.steps, args.warmup, args.device, args.batch_size
        )
        print(f"{name:<14} {bs:>5} {rate:>10.0f} {per_step * 1000:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
