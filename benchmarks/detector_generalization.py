"""Real or generated: does a detector trained on one generator family catch the others?

    python benchmarks/detector_generalization.py --data-dir ../shared/datasets/mnist zoo
    python benchmarks/detector_generalization.py --data-dir ../shared/datasets/mnist matrix
    python benchmarks/detector_generalization.py --data-dir ../shared/datasets/mnist attack

``zoo``: trains the generators the protocol tests on, into ``--zoo`` (default
``runs/zoo``): the families mlp2014, dcgan, dcgan-cond and the default dcgan-clusters
(the modern recipe), an early stage (300 steps) and a second seed of dcgan, each for
``--steps`` (default 3,000) on the full MNIST training set; a finished run is not trained
again. (The residual family at its defaults made blank images after 3,000 steps, so it
is left out.) ``--extra RUN ...`` adds run folders
trained elsewhere (e.g. the private runs of ``benchmarks/private_mnist.py``).

``matrix``: for each training family in ``--train-on``, ``train_detector`` with its default
recipe (convnet, 30,000 real training images and 30,000 samples of that family, 25
epochs) and blur/JPEG/resize augmentation, then
every family is scored on 2,000 real *test* images and 2,000 fresh samples (other noise
seeds), clean and after JPEG quality 75 and after a 0.5x resize, giving average precision
and accuracy at the detector's calibrated threshold.

``attack``: targeted PGD (20 steps; L-inf 2/255, 4/255, 8/255 as asked, then 16/255 and
32/255; L2 0.5, 1 and 2) against the dcgan-trained detector on 1,000 fakes it catches: the
share then called real; writes a picture of one attacked example.

Results go to ``benchmarks/results/detector_generalization.json`` (and ``.png``). A
benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path

import torch

from ganforge.config import RunConfig, merge
from ganforge.detect import degrade
from ganforge.io.atomic import atomic_write_bytes

RESULTS = Path(__file__).with_name("results") / "detector_generalization.json"

# name -> (network, seed, steps or None for --steps)
ZOO = {
    "dcgan": ("dcgan", 0, None),
    "dcgan-seed1": ("dcgan", 1, None),
    "dcgan-early": ("dcgan", 0, 300),
    "mlp2014": ("mlp2014", 0, None),
    "dcgan-cond": ("dcgan-cond", 0, None),
    "dcgan-clusters": ("dcgan-clusters", 0, None),
}


def save(key: str, value: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = value
    atomic_write_bytes(RESULTS, (json.dumps(results, indent=2) + "\n").encode())


def train_zoo(zoo: Path, data_dir: str, steps: int) -> dict[str, float]:
    from ganforge.train import train
    from ganforge.train.checkpoint import load_checkpoint

    minutes = {}
    for name, (network, seed, own_steps) in ZOO.items():
        run, total = zoo / name, own_steps or steps
        if (run / "checkpoints" / "last.pt").exists():
            state = load_checkpoint(run, kind="gan")
            if state["step"] >= total:
                continue
        cfg = merge(
            RunConfig(),
            {"data": {"root": data_dir}, "model": {"network": network},
             "train": {"steps": total, "seed": seed, "sample_every": 1000,
                       "checkpoint_every": 500}},
        )  # fmt: skip
        start = time.perf_counter()
        train(cfg, run)
        minutes[name] = (time.perf_counter() - start) / 60
        print(f"trained {name} in {minutes[name]:.1f} min")
    return minutes


CONDITIONS = {
    "clean": lambda x: x,
    "jpeg75": lambda x: degrade.jpeg(x, 75),
    "resize0.5": lambda x: degrade.resize(x, 0.5),
}


def families(zoo: Path, extra: list[Path]) -> dict[str, Path]:
    found = {name: zoo / name for name in ZOO if (zoo / name).is_dir()}
    return found | {run.name: run for run in extra}


def matrix(args: argparse.Namespace) -> dict:
    """Detectors trained on each family of ``--train-on``, scored on every family."""
    from ganforge.detect import DetectorConfig, load_detector, train_detector
    from ganforge.detect.training import generated_images, real_images

    runs = families(args.zoo, args.extra)
    real = real_images("mnist", "test", args.n, 1, args.data_dir)
    tested = {c: f(real) for c, f in CONDITIONS.items()}
    fakes = {name: generated_images(run, args.n, 5_000_000) for name, run in runs.items()}
    rows = {}
    config = DetectorConfig(augment=True)  # the default recipe: convnet, 30,000 + 30,000, 25 epochs
    for family in args.train_on:
        out = args.zoo / f"detector-{family}"
        start = time.perf_counter()
        if not (out / "summary.json").exists():
            train_detector(out, [runs[family]], config, args.data_dir, progress=False)
        detector = load_detector(out)
        row = {"train_minutes": (time.perf_counter() - start) / 60,
               "threshold": detector.threshold, "held_out": detector.info["held_out"]}  # fmt: skip
        for name, fake in fakes.items():
            row[name] = {c: detector.measure(tested[c], f(fake)) for c, f in CONDITIONS.items()}
        # Unseen: another network family (a second seed or an early stage is not).
        unseen = [n for n in fakes if ZOO.get(n, (n,))[0] != ZOO[family][0]]
        row["mean_unseen_ap_jpeg75"] = sum(
            row[n]["jpeg75"]["average_precision"] for n in unseen
        ) / max(1, len(unseen))
        rows[family] = row
        print(f"trained on {family}:")
        for name in fakes:
            cells = "  ".join(
                f"{c} AP {100 * row[name][c]['average_precision']:.1f} "
                f"acc {100 * row[name][c]['accuracy']:.1f}"
                for c in CONDITIONS
            )
            print(f"  {name:16s} {cells}")
        mean = 100 * row["mean_unseen_ap_jpeg75"]
        print(f"  mean AP on unseen families after JPEG 75: {mean:.1f}")
    plot_matrix(rows, list(fakes), RESULTS.with_suffix(".png"))
    return {"images_per_set": args.n, "detector": dataclasses.asdict(config), "rows": rows}


def plot_matrix(rows: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid = np.array([[rows[t][n]["jpeg75"]["average_precision"] * 100 for n in names]
                     for t in rows])  # fmt: skip
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 0.6 * len(rows) + 1.6))
    im = ax.imshow(grid, vmin=50, vmax=100, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), [f"trained on {t}" for t in rows])
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center",
                    color="white" if grid[i, j] < 80 else "black", fontsize=8)  # fmt: skip
    ax.set_title("average precision (%) after JPEG 75: real MNIST test vs each generator")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def attack(args: argparse.Namespace) -> dict:
    """PGD against the dcgan-trained detector on fakes it catches: the share called real."""
    from ganforge.detect import load_detector
    from ganforge.detect.training import GENERATED, REAL, as_input, generated_images
    from ganforge.robustness.attacks import pgd

    detector = load_detector(args.zoo / "detector-dcgan")
    model = detector.model
    fake = generated_images(args.zoo / "dcgan", 3 * args.n, 9_000_000)
    caught = fake[detector.probabilities(fake) >= detector.threshold][: args.n]
    x = as_input(caught)
    target = torch.full((len(x),), REAL)
    rows, example, fooled = {}, {}, {}
    radii = [(f"linf {k}/255", "linf", k / 255) for k in (2, 4, 8, 16, 32)]
    radii += [(f"l2 {r}", "l2", r) for r in (0.5, 1.0, 2.0)]
    for label, norm, eps in radii:
        adv = torch.cat([pgd(model, x[i : i + 500], target[i : i + 500], eps, steps=20,
                             norm=norm, targeted=True) for i in range(0, len(x), 500)])  # fmt: skip
        with torch.no_grad():
            p = torch.softmax(model(adv), 1)[:, GENERATED]
        rows[label] = {"fooling_rate": float((p < detector.threshold).float().mean()),
                       "images": len(x)}  # fmt: skip
        example[label], fooled[label] = adv, p < detector.threshold
        print(f"{label}: {100 * rows[label]['fooling_rate']:.1f}% of {len(x)} caught fakes "
              "are called real")  # fmt: skip
    # Show a fake that L-inf 8/255 turns real (the largest radius asked), else the first
    # radius that turns any.
    shown_at = (
        "linf 8/255" if fooled["linf 8/255"].any() else next(k for k in example if fooled[k].any())
    )
    i = int(fooled[shown_at].nonzero()[0])
    shown = {k: v[i] for k, v in example.items()}
    plot_attack(x[i], shown, detector, RESULTS.with_name("detector_attack.png"))
    return {"detector": "detector-dcgan", "pgd_steps": 20, "rows": rows}


def plot_attack(clean, examples: dict, detector, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.detect.training import GENERATED

    shown = {"generated": clean, **examples}
    fig, axes = plt.subplots(1, len(shown), figsize=(2.0 * len(shown), 2.4))
    for ax, (label, image) in zip(axes, shown.items(), strict=True):
        with torch.no_grad():
            p = float(torch.softmax(detector.model(image[None]), 1)[0, GENERATED])
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{label}\nP(generated) {p:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--zoo", type=Path, default=Path("runs/zoo"))
    sub = p.add_subparsers(dest="what", required=True)
    z = sub.add_parser("zoo")
    z.add_argument("--steps", type=int, default=3000)
    m = sub.add_parser("matrix")
    m.add_argument("--train-on", nargs="+", default=["dcgan", "mlp2014"])
    m.add_argument("--extra", nargs="*", type=Path, default=[])
    m.add_argument("--n", type=int, default=2000, help="images per tested set")
    sub.add_parser("attack").add_argument("--n", type=int, default=1000)
    args = p.parse_args()
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    if args.what == "zoo":
        minutes = train_zoo(args.zoo, args.data_dir, args.steps)
        save("zoo", {"machine": machine, "steps": args.steps, "minutes": minutes})
    elif args.what == "matrix":
        save("matrix", {"machine": machine, **matrix(args)})
    else:
        save("attack", {"machine": machine, **attack(args)})


if __name__ == "__main__":
    main()
