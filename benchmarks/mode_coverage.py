"""Mode coverage: Stacked MNIST (1000 modes) and the 2-D mixtures (8-Gaussian ring,
25-Gaussian grid), with the protocols of VEEGAN (Srivastava et al., 2017) and PacGAN
(Lin et al., 2018).

    python benchmarks/mode_coverage.py mixtures
    python benchmarks/mode_coverage.py stacked --data-dir ../shared/datasets/mnist --budget 1800

``mixtures``: each loss trains small MLPs on each mixture (``ganforge.train.points``);
2,500 samples; a sample is high quality within 3 standard deviations of its nearest centre,
and a mode is captured when it is the nearest centre of a high-quality sample. A picture of
the samples over the modes goes beside the JSON.

``stacked``: ``ganforge train``'s default recipe (or ``--set`` JSON overrides) on Stacked
MNIST (128,000 images of three independent digits, as PacGAN built them), stopped at
training-time marks; at each, 26,000 samples of the averaged generator, each channel read by
the reference MNIST network: modes covered and KL(mode histogram || uniform). The floor is
26,000 real stacked images made the same way from the MNIST test digits.

A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from time_to_quality import train_until  # this folder: run as a script

from ganforge.config import RunConfig, merge
from ganforge.data import load_dataset, load_mnist, stack_digits, to_float
from ganforge.data.mixtures import MIXTURES
from ganforge.metrics.modes import mixture_coverage, stacked_mode_coverage
from ganforge.metrics.reference import load_reference
from ganforge.nets import draw_labels, generate
from ganforge.train import Trainer
from ganforge.train.points import PointsConfig, train_points

SAMPLES_2D = 2_500
SAMPLES_STACKED = 26_000

GAMES = {  # label: PointsConfig overrides
    "relativistic + R1 + R2 (R3GAN)": {},
    "non-saturating, no penalty (2014)": {"loss": "nonsaturating", "r1": 0.0, "r2": 0.0},
}


def write_json(path: Path, report: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)


def mixtures(out: Path, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    fig, axes = plt.subplots(len(GAMES), len(MIXTURES), figsize=(8, 8))
    for i, (label, overrides) in enumerate(GAMES.items()):
        for j, (name, mixture) in enumerate(MIXTURES.items()):
            for seed in range(seeds):
                start = time.perf_counter()
                recipe = train_points(mixture, PointsConfig(**overrides, seed=seed))
                points = recipe.sample(SAMPLES_2D, seed=1000 + seed)
                m = mixture_coverage(points, mixture.centres, mixture.std).to_dict()
                m.update(game=label, mixture=name, seed=seed, seconds=time.perf_counter() - start)
                rows.append(m)
                print(
                    f"{name:<5} {label:<36} seed {seed}: {m['modes']}/{m['total']} modes, "
                    f"{100 * m['high_quality']:.1f}% high quality, KL {m['kl']:.3f}",
                    flush=True,
                )
                if seed == 0:
                    ax = axes[i, j]
                    c = mixture.centres
                    ax.scatter(c[:, 0], c[:, 1], s=60, c="none", edgecolors="red", lw=1)
                    ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4)
                    title = f"{name}: {label}\n{m['modes']}/{m['total']} modes, "
                    title += f"{100 * m['high_quality']:.0f}% high quality"
                    ax.set_title(title, fontsize=8)
                    ax.set_aspect("equal")
    fig.tight_layout()
    tmp = out / "mixtures.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out / "mixtures.png")
    write_json(out / "mixtures.json", {"command": " ".join(os.sys.argv), "runs": rows})


def stacked(out: Path, data_dir: str | None, budget: float, every: float, overrides: dict) -> None:
    net = load_reference()
    test = load_mnist(data_dir, "test", download=False)
    floor = stacked_mode_coverage(net, to_float(stack_digits(test, SAMPLES_STACKED, 1).images))
    print(f"floor (real stacked test digits): {floor.modes} modes, KL {floor.kl:.4f}", flush=True)
    data = load_dataset("stacked-mnist", data_dir, download=False)
    cfg = merge(RunConfig(), {**overrides, "data": {"name": "stacked-mnist"}})
    curve = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        trainer = Trainer(cfg, tmp, data=data, progress=False)
        setup = time.perf_counter() - start
        print(f"setup (clusters included): {setup:.1f} s", flush=True)
        engine, trained, target = trainer.engine, 0.0, every
        while target <= budget + 1e-9:
            trained, _ = train_until(engine, trained, target)
            g = trainer.recipe.ema
            z = torch.randn(SAMPLES_STACKED, g.z_dim, generator=torch.Generator().manual_seed(7))
            images = generate(g, z, draw_labels(g, SAMPLES_STACKED, seed=8))
            m = stacked_mode_coverage(net, images).to_dict()
            m.update(seconds=round(trained, 1), step=engine.step)
            curve.append(m)
            print(f"  {m['seconds']:7.1f} s  step {m['step']:6d}  {m['modes']} modes  "
                  f"KL {m['kl']:.4f}", flush=True)  # fmt: skip
            target += every
        from ganforge.viz.grid import grid_image, save_image

        save_image(grid_image(images[:100], nrow=10), out / "stacked_mnist_samples.png")
    report = {
        "command": " ".join(os.sys.argv),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "config": trainer.cfg.to_dict(),
        "setup_seconds": setup,
        "floor": floor.to_dict(),
        "curve": curve,
    }
    write_json(out / "stacked_mnist.json", report)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("mixtures", "stacked"))
    parser.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    parser.add_argument("--budget", type=float, default=1800, help="stacked: training seconds")
    parser.add_argument("--every", type=float, default=300, help="stacked: seconds between probes")
    parser.add_argument("--set", default="{}", help="stacked: config overrides as JSON")
    parser.add_argument("--seeds", type=int, default=3, help="mixtures: runs per game")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.what == "mixtures":
        mixtures(out, args.seeds)
    else:
        stacked(out, args.data_dir, args.budget, args.every, json.loads(args.set))


if __name__ == "__main__":
    main()
