"""Reproduce the adversarial-example numbers of Goodfellow et al. (2014) and Madry et al.
(2017) on MNIST with ganforge's library, and write the table.

Rows:
1. FGSM at eps 0.25 against softmax regression (paper: 99.9% error);
2. FGSM at eps 0.25 against a standard network (paper, maxout: 89.4% error);
3. the same network trained with the 2014 objective (mix 0.5, eps 0.25), FGSM error
   (paper, maxout: 17.9%);
4. a convnet trained for L-inf eps 0.3, clean accuracy and accuracy under PGD (Madry's
   model: 98.5%+ clean, 89.62% under PGD with 50 restarts).

Each model trains into ``OUT/<row>`` (skipped when it is already there), so the script can
be stopped and run again. Usage:

    python benchmarks/adversarial_mnist.py --data-dir ../shared/datasets/mnist
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ganforge.data import load_split
from ganforge.robustness import RobustTrainConfig, fgsm, load_classifier, robust_train
from ganforge.robustness.evaluate import evaluate_robustness, save_report
from ganforge.robustness.training import accuracy, to_unit

ROWS = {
    "softmax": RobustTrainConfig(network="softmax", method="standard", eps=0.25, epochs=5),
    "mlp": RobustTrainConfig(network="mlp", method="standard", eps=0.25, epochs=10),
    "mlp-goodfellow2014": RobustTrainConfig(
        network="mlp", method="goodfellow2014", eps=0.25, epochs=10
    ),
}
PUBLISHED_FGSM_ERROR = {"softmax": 99.9, "mlp": 89.4, "mlp-goodfellow2014": 17.9}


def fgsm_error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> float:
    wrong = 0
    for i in range(0, len(x), 1000):
        adv = fgsm(model, x[i : i + 1000], y[i : i + 1000], eps)
        with torch.no_grad():
            wrong += int((model(adv).argmax(1) != y[i : i + 1000]).sum())
    return 100.0 * wrong / len(x)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", default="../shared/datasets/mnist")
    p.add_argument("--out", default="runs/adversarial")
    recipe = RobustTrainConfig()  # robust-train's defaults, so the two cannot drift apart
    p.add_argument("--robust-network", default=recipe.network)
    p.add_argument("--robust-method", default=recipe.method)
    p.add_argument("--robust-epochs", type=float, default=recipe.epochs)
    p.add_argument("--robust-lr", type=float, default=recipe.lr)
    p.add_argument("--eps-warmup", type=float, default=recipe.eps_warmup)
    p.add_argument("--pgd-steps", type=int, default=100)
    p.add_argument("--pgd-restarts", type=int, default=5)
    p.add_argument("--pgd-images", type=int, default=10_000, help="test images under PGD")
    p.add_argument("--pgd-eps", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--results", default="benchmarks/results/adversarial_mnist.json")
    p.add_argument("--only", choices=["2014", "robust"], help="run one part (default: both)")
    args = p.parse_args()
    if 0.3 not in args.pgd_eps:
        p.error("--pgd-eps must include 0.3, the issue's radius")
    out = Path(args.out)
    test = load_split("mnist", "test", args.data_dir, download=False)
    x, y = to_unit(test.images), test.labels
    results_file = Path(args.results)
    results: dict[str, dict] = json.loads(results_file.read_text()) if results_file.exists() else {}
    for name, config in ROWS.items() if args.only != "robust" else []:
        run = out / name
        if not (run / "summary.json").exists():  # a new or interrupted run
            robust_train(run, config, data_dir=args.data_dir, download=False)
        model, _ = load_classifier(run)
        model.requires_grad_(False)
        summary = json.loads((run / "summary.json").read_text())
        results[name] = {
            "clean_error": 100 * (1 - accuracy(model, x, y)),
            "fgsm_0.25_error": fgsm_error(model, x, y, 0.25),
            "published_fgsm_error": PUBLISHED_FGSM_ERROR[name],
            "train_seconds": summary["train_seconds"],
        }
        print(name, results[name], flush=True)
    if args.only == "2014":
        _write(results_file, results)
        return

    name = f"{args.robust_network}-{args.robust_method}-0.3"
    run = out / name
    if not (run / "summary.json").exists():  # a new or interrupted run
        config = RobustTrainConfig(
            network=args.robust_network,
            method=args.robust_method,
            eps=0.3,
            epochs=args.robust_epochs,
            lr=args.robust_lr,
            eps_warmup=args.eps_warmup,
        )
        robust_train(run, config, data_dir=args.data_dir, download=False)
    model, _ = load_classifier(run)
    model.requires_grad_(False)
    summary = json.loads((run / "summary.json").read_text())
    n = args.pgd_images
    start = time.perf_counter()
    report = evaluate_robustness(
        model, x[:n], y[:n], args.pgd_eps, steps=args.pgd_steps, restarts=args.pgd_restarts
    )
    save_report(report, run / "attack-linf")
    k = report.eps.index(0.3)
    print(report.table(), flush=True)
    results[name] = {
        "clean_accuracy_10k": 100 * accuracy(model, x, y),
        "pgd_images": n,
        "pgd_steps": args.pgd_steps,
        "pgd_restarts": args.pgd_restarts,
        "pgd_eps": report.eps,
        "pgd_0.3_accuracy": 100 * report.accuracy["pgd"][k],
        "worst_case_0.3_accuracy": 100 * report.worst_case[k],
        "fgsm_0.3_accuracy": 100 * report.accuracy["one-step"][k],
        "masking_checks": {c.name: c.passed for c in report.checks},
        "train_seconds": summary["train_seconds"],
        "kept_epoch": summary["kept_epoch"],
        "evaluation_seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
    }
    _write(results_file, results)


def _write(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
