"""Test errors of the semi-supervised GAN during training, against wall-clock time.

Trains ``SemiSupervisedGAN`` on MNIST with N labels (seed's balanced subset) and all 60,000
training images unlabelled, and every half epoch counts the averaged classifier's errors on
the 10,000 test images (evaluation time is excluded from the clock). Writes JSON and a PNG:

    python benchmarks/semisupervised_curve.py --data-dir ../shared/datasets/mnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganforge.data import load_mnist
from ganforge.semisupervised import SemiSupervisedGAN
from ganforge.semisupervised.labels import balanced_subset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/datasets/mnist")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    library = SemiSupervisedGAN()  # the library's defaults, so the two cannot drift apart
    p.add_argument("--epochs", type=float, default=library.epochs)
    p.add_argument("--lr", type=float, default=library.lr)
    p.add_argument("--batch-size", type=int, default=library.batch_size)
    p.add_argument("--out", default="benchmarks/results/semisupervised_curve")
    args = p.parse_args()
    train = load_mnist(args.data_dir, "train", download=False)
    test = load_mnist(args.data_dir, "test", download=False)
    idx = balanced_subset(train.labels, args.labels, args.seed)
    rows: list[dict[str, float]] = []
    clock = {"train": 0.0, "since": time.perf_counter()}

    def watch(update: int, classifier: torch.nn.Module) -> None:
        clock["train"] += time.perf_counter() - clock["since"]
        model.classifier_ = classifier
        errors = int((model.predict(test.images) != test.labels).sum())
        rows.append(
            {
                "epoch": update * args.batch_size / len(train),
                "seconds": round(clock["train"], 1),
                "errors": errors,
            }
        )
        print(rows[-1], flush=True)
        clock["since"] = time.perf_counter()

    model = SemiSupervisedGAN(
        epochs=args.epochs,
        seed=args.seed,
        lr=args.lr,
        batch_size=args.batch_size,
        progress=False,
    )
    model.fit(
        train.images[idx],
        train.labels[idx],
        train.images,
        log_every=max(1, len(train) // (2 * args.batch_size)),  # every half epoch
        callback=watch,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "labels": args.labels,
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "curve": rows,
        "history": model.history_,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    _plot(rows, out.with_suffix(".png"), args.labels)


def _plot(rows: list[dict[str, float]], path: Path, labels: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["seconds"] / 60 for r in rows], [r["errors"] for r in rows], marker="o", ms=3)
    ax.axhline(93, color="k", ls="--", lw=1, label="Improved GAN, published (300 epochs)")
    ax.axhline(100, color="r", ls=":", lw=1, label="target: 100 errors")
    ax.set_yscale("log")
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("test errors of 10,000")
    ax.set_title(f"semi-supervised GAN, MNIST, {labels} labels")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
