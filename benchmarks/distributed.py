"""One process against several: how close the weights are, images per second, and what a
killed process does to the job.

    python benchmarks/distributed.py --data-dir ../shared/datasets/mnist

``equivalence``: ``ganforge train`` (the default recipe, global batch 64, MNIST) on 1 and on
2 processes (gloo, one thread each), the largest weight difference after 1, 10, 40 and 200
steps. The control is one process on 1 against 2 threads: the same arithmetic summed in
another order, which is all that separates the two runs.

``throughput``: images per second over 300 steps, on 1 process with 1 and with all threads,
and on N processes of one thread (from the runs' own ``images_per_s``, window means, first
window dropped).

``kill``: a 2-process run killed with SIGKILL on one process once its first checkpoint is
written: seconds until the launcher exits, its stderr, and whether the checkpoint loads.

On a GPU machine pass ``--device cuda`` and ``--nproc`` up to the GPU count: the scaling
efficiency is images/s on N GPUs over N times images/s on one.

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ganforge.train.checkpoint import load_checkpoint
from ganforge.train.metrics_log import read_metrics

STEPS_MARKS = (1, 10, 40, 200)


def ganforge(args: list[str], threads: int, nproc: int = 1) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "ganforge", "train", *args, "--quiet"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return proc


def largest_difference(a: Path, b: Path) -> float:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    worst = 0.0
    for part in ("players", "ema"):
        for name, tensors in sa[part].items():
            for key, t in tensors.items():
                if t.is_floating_point():
                    worst = max(worst, (t - sb[part][name][key]).abs().max().item())
    return worst


def equivalence(common: list[str], tmp: Path) -> list[dict]:
    rows = []
    for steps in STEPS_MARKS:
        runs = {}
        for label, threads, nproc in (("one", 1, 1), ("two", 1, 2), ("one-2-threads", 2, 1)):
            runs[label] = tmp / f"eq-{steps}-{label}"
            ganforge([*common, "--steps", str(steps), "--out", str(runs[label])], threads, nproc)
        row = {
            "steps": steps,
            "one_vs_two_processes": largest_difference(runs["one"], runs["two"]),
            "control_one_vs_two_threads": largest_difference(runs["one"], runs["one-2-threads"]),
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def images_per_second(run: Path) -> float:
    rows = [r for r in read_metrics(run) if "images_per_s" in r][1:]
    return sum(r["images_per_s"] for r in rows) / len(rows)


def throughput(common: list[str], tmp: Path, nprocs: list[int]) -> list[dict]:
    cores = os.cpu_count() or 1
    setups = [("1 process, 1 thread", 1, 1), (f"1 process, {cores} threads", cores, 1)]
    setups += [(f"{n} processes, 1 thread each", 1, n) for n in nprocs if n > 1]
    rows = []
    for label, threads, nproc in setups:
        out = tmp / f"speed-{threads}-{nproc}"
        ganforge([*common, "--steps", "300", "--out", str(out)], threads, nproc)
        rows.append({"setup": label, "processes": nproc, "images_per_s": images_per_second(out)})
        print(rows[-1], flush=True)
    return rows


def kill(common: list[str], tmp: Path) -> dict:
    out = tmp / "killed"
    command = [sys.executable, "-m", "ganforge", "train", *common, "--steps", "100000",
               "--checkpoint-every", "50", "--out", str(out), "--quiet",
               "--nproc", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    while not (out / "checkpoints" / "last.pt").exists():
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read())
        time.sleep(0.05)
    time.sleep(2)  # mid-run, between checkpoints
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    victim = int(children.stdout.split()[-1])
    start = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    seconds = time.monotonic() - start
    step = load_checkpoint(out)["step"]
    report = {"seconds_to_stop": seconds, "exit_code": proc.returncode, "stderr": stderr.strip(),
              "checkpoint_step": step}  # fmt: skip
    print(report, flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nproc", type=int, nargs="+", default=[2])
    parser.add_argument("--limit", type=int, default=10_000, help="MNIST images used")
    parser.add_argument("--out", default="benchmarks/results/distributed.json")
    parser.add_argument("--parts", nargs="+", default=["equivalence", "throughput", "kill"])
    args = parser.parse_args()
    common = ["--data-dir", args.data_dir, "--no-download", "--limit", str(args.limit),
              "--device", args.device, "--batch-size", "64", "--log-every", "50",
              "--sample-every", "100000", "--checkpoint-every", "100000"]  # fmt: skip
    report: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "recipe": "ganforge train defaults (dcgan-clusters), global batch 64, MNIST",
    }
    with tempfile.TemporaryDirectory() as tmp:
        if "equivalence" in args.parts:
            report["equivalence"] = equivalence(common, Path(tmp))
        if "throughput" in args.parts:
            report["throughput"] = throughput(common, Path(tmp), args.nproc)
        if "kill" in args.parts:
            report["kill"] = kill(common, Path(tmp))
    path = Path(args.out)
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(report, indent=2))
    os.replace(tmp_path, path)


if __name__ == "__main__":
    main()
