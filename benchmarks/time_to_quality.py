"""Time to quality: how soon training from scratch gives recognizable digits and an FID near
the real-data floor, and what each speed optimization contributes.

    python benchmarks/time_to_quality.py --data-dir ../shared/datasets/mnist
    python benchmarks/time_to_quality.py --data-dir ../shared/datasets/mnist --ablate --budget 120

Each network trains from scratch in its default configuration. Every few seconds of training
the clock stops and the EMA generator is probed on fixed noise: FID against the 10,000 test
images on the reference MNIST features, the fraction of samples the reference classifier
gives confidence >= 0.9, and class coverage. Probe time is not training time. Recorded:

- training throughput (real images through the discriminator per second);
- time to "recognizable": >= 90% of samples at confidence >= 0.9 and all 10 classes with at
  least half their fair share;
- time to an FID within 2x the floor: the floor is as many real training images, probed the
  same way (FID is biased upwards for small sample counts, so both use the same count);
- at the budget (10 minutes by default): FID on 10,000 samples beside the 10,000-image floor.

``--ablate`` runs the same with each optimization switched off in turn, and with all of them
off, so each gain is measured, not assumed. JSON and a PNG plot (FID against training time)
go to --out. A benchmark, not a test: CI does not run it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ganforge.config import RunConfig, merge
from ganforge.data import ImageSet, load_mnist, to_float
from ganforge.metrics.classes import class_coverage, confident_fraction
from ganforge.metrics.evaluate import embed
from ganforge.metrics.frechet import fid
from ganforge.metrics.reference import load_reference
from ganforge.nets import draw_labels, generate
from ganforge.train import Trainer

RECOGNIZABLE_CONFIDENCE = 0.9


# -- probing quality -------------------------------------------------------------------------


@dataclass
class Probe:
    """Measures a generator against MNIST test features on fixed noise."""

    test: ImageSet
    train: ImageSet
    samples: int
    seed: int = 777
    net: torch.nn.Module = field(default_factory=load_reference)

    def __post_init__(self) -> None:
        self.test_feats, _ = embed(self.net, to_float(self.test.images))
        self.test_np = self.test_feats.numpy()

    def images(self, images: torch.Tensor) -> dict[str, float]:
        feats, probs = embed(self.net, images)
        cov = class_coverage(probs)
        return {
            "fid": fid(feats.numpy(), self.test_np),
            "confident_fraction": confident_fraction(probs, RECOGNIZABLE_CONFIDENCE),
            "classes_covered": cov.covered,
        }

    def generator(self, g: torch.nn.Module, z_dim: int, n: int | None = None) -> dict[str, float]:
        """A conditional generator is asked for each class in turn, an equal share of each;
        a cluster-conditioned one for clusters by their share of the data."""
        n = n or self.samples
        z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(self.seed))
        labels = draw_labels(g, n, seed=self.seed + 1)
        return self.images(generate(g, z, labels))

    def floor(self, n: int | None = None) -> dict[str, float]:
        return self.images(to_float(self.train.images[: n or self.samples]))


def recognizable(m: dict[str, float]) -> bool:
    return m["confident_fraction"] >= 0.9 and m["classes_covered"] == 10


# -- the optimizations, each with a way to switch it off ------------------------------------


class PerItemMnist(Dataset):
    """The common way to feed MNIST: one PIL image per item, ToTensor and Normalize, batched
    by a DataLoader. The baseline for our preloaded uint8 tensor indexed in whole batches."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images, self.labels = images[:, 0].numpy(), labels
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


class LoaderData:
    """Stands in for the trainer's ImageSet: each ``batch()`` is the loader's next batch."""

    def __init__(self, data: ImageSet, batch_size: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        dataset = PerItemMnist(data.images, data.labels)
        self.loader = DataLoader(dataset, batch_size, shuffle=True, drop_last=True, generator=g)
        self.it = iter(self.loader)

    def batch(self, index):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


def no_preloaded_data(trainer: Trainer) -> None:
    t = trainer.cfg.train
    trainer.data = LoaderData(trainer.data.to("cpu"), t.batch_size, t.seed)


def no_channels_last(trainer: Trainer) -> None:
    for m in (trainer.g, trainer.d, trainer.recipe.ema):
        m.to(memory_format=torch.contiguous_format)
    if isinstance(trainer.data, ImageSet):  # not when the loader already replaced it
        trainer.data.images = trainer.data.images.contiguous()


def no_fused_adam(trainer: Trainer) -> None:
    """PyTorch's default Adam on the CPU: a loop over the parameters, several ops each."""
    optimizers = trainer.recipe.players.optimizers
    for name, fused in optimizers.items():
        group = fused.param_groups[0]
        plain = torch.optim.Adam(group["params"], lr=group["lr"], betas=group["betas"])
        plain.param_groups[0]["base_lr"] = group["base_lr"]
        optimizers[name] = plain


ABLATIONS: dict[str, Callable[[Trainer], None] | None] = {
    "preloaded_uint8_data": no_preloaded_data,
    "channels_last": no_channels_last,
    "fused_adam": no_fused_adam,
    "stats_on_device": None,  # off = read losses to the host after every step
}


# -- one timed run ---------------------------------------------------------------------------


def probe_times(budget: float) -> list[float]:
    """Every 5 s for the first two minutes, then every 15 s, and at the budget."""
    times = [t for t in np.arange(5, min(budget, 120) + 1e-9, 5)]
    times += [t for t in np.arange(135, budget + 1e-9, 15)]
    if not times or times[-1] < budget:
        times.append(budget)
    return [float(t) for t in times]


def train_until(
    engine, trained: float, target: float, sync_each_step: bool = False
) -> tuple[float, int]:
    """Step ``engine`` until ``trained`` seconds of training reach ``target``; returns the
    training seconds now and the steps taken. Time spent outside (probes) is not counted."""
    start, steps = time.perf_counter(), 0
    while trained + (time.perf_counter() - start) < target:
        engine.train_step()
        if sync_each_step:
            engine.stats.read()
        steps += 1
    engine.stats.read()  # wait for the device before reading the clock
    return trained + time.perf_counter() - start, steps


def timed_run(
    name: str,
    overrides: dict,
    data: ImageSet,
    probe: Probe,
    budget: float,
    off: tuple[str, ...] = (),
    device: str = "cpu",
    final_samples: int = 10_000,
    stops: list[float] | None = None,
) -> dict:
    cfg = merge(
        RunConfig(), {**overrides, "train": {**overrides.get("train", {}), "device": device}}
    )
    network = name
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, data=data, progress=False)
        for name in off:
            switch_off = ABLATIONS[name]
            if switch_off is not None:
                switch_off(trainer)
        sync_each_step = "stats_on_device" in off
        engine = trainer.engine
        z_dim = trainer.cfg.model.z_dim
        t = trainer.cfg.train
        curve, trained, steps = [], 0.0, 0
        first_recognizable = first_2x = None
        floor = probe.floor()
        targets = stops or probe_times(budget)
        for target in targets:
            trained, done = train_until(engine, trained, target, sync_each_step)
            steps += done
            m = probe.generator(trainer.recipe.ema, z_dim)
            m.update(seconds=round(trained, 2), step=steps)
            curve.append(m)
            if first_recognizable is None and recognizable(m):
                first_recognizable = m["seconds"]
            if first_2x is None and m["fid"] <= 2 * floor["fid"]:
                first_2x = m["seconds"]
            print(
                f"  {network:<8} {m['seconds']:6.1f} s  step {steps:5d}  FID {m['fid']:7.2f}  "
                f"conf {m['confident_fraction']:.3f}  classes {m['classes_covered']}",
                flush=True,
            )
        final = probe.generator(trainer.recipe.ema, z_dim, final_samples)
        final_floor = probe.floor(final_samples)
    return {
        "network": network,
        "config": overrides,
        "off": list(off),
        "batch_size": t.batch_size,
        "train_seconds": trained,
        "steps": steps,
        "images_per_s": steps * t.batch_size * t.k / trained,
        "seconds_to_recognizable": first_recognizable,
        "seconds_to_2x_floor": first_2x,
        "probe_floor": floor,
        "final": final,
        "final_floor": final_floor,
        "curve": curve,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in results:
        label = r["network"] + (
            " (" + ", ".join(f"no {o}" for o in r["off"]) + ")" if r["off"] else ""
        )
        xs = [c["seconds"] for c in r["curve"]]
        ax.plot(xs, [c["fid"] for c in r["curve"]], label=label)
        if r["seconds_to_recognizable"] is not None:
            ax.axvline(r["seconds_to_recognizable"], ls=":", color=ax.lines[-1].get_color())
    floor = results[0]["probe_floor"]["fid"]
    ax.axhline(floor, color="k", lw=0.8, label=f"real-data floor ({floor:.2f})")
    ax.axhline(2 * floor, color="k", lw=0.8, ls="--", label="2x floor")
    ax.set(
        xlabel="training seconds (probes excluded)",
        ylabel="FID, reference MNIST features",
        yscale="log",
        title="Time to quality on this machine (dotted: recognizable)",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=os.environ.get("GANFORGE_DATA"))
    parser.add_argument(
        "--networks",
        nargs="*",
        default=["default", "dcgan", "dcgan-cond"],
        help="'default' (no flags), or network names, each in its family's default recipe",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help='also a config of your own, e.g. \'r1-10={"loss": {"r1": 10}}\' (repeatable)',
    )
    parser.add_argument("--budget", type=float, default=600, help="training seconds per run")
    parser.add_argument("--probe-samples", type=int, default=2000)
    parser.add_argument("--ablate", action="store_true", help="also each optimization off")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--stops",
        type=lambda text: [float(t) for t in text.split(",")],
        help="training seconds at which to probe, comma-separated (default: every 5 s, "
        "every 15 s after two minutes, and at the budget)",
    )
    parser.add_argument("--final-samples", type=int, default=10_000)
    parser.add_argument("--out", default="benchmarks/results", help="folder for JSON and PNG")
    args = parser.parse_args()

    train = load_mnist(args.data_dir, "train", download=False)
    test = load_mnist(args.data_dir, "test", download=False)
    probe = Probe(test, train, args.probe_samples)
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}"
    )
    print(f"# {machine}")
    configs = {n: {} if n == "default" else {"model": {"network": n}} for n in args.networks}
    for variant in args.variant:
        label, _, text = variant.partition("=")
        configs[label] = json.loads(text)
    runs: list[tuple[str, tuple[str, ...]]] = [(n, ()) for n in configs]
    if args.ablate:
        for n in configs:
            runs += [(n, (name,)) for name in ABLATIONS] + [(n, tuple(ABLATIONS))]
    results = []
    for name, off in runs:
        print(f"{name}: " + (", ".join(f"no {o}" for o in off) or "as configured"), flush=True)
        results.append(
            timed_run(
                name,
                configs[name],
                train,
                probe,
                args.budget,
                off,
                args.device,
                args.final_samples,
                args.stops,
            )  # fmt: skip
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "ablation" if args.ablate else "time_to_quality"
    report = {
        "machine": machine,
        "budget_s": args.budget,
        "command": " ".join(os.sys.argv),
        "runs": results,
    }
    tmp = out / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out / f"{stem}.json")
    plot([r for r in results if not r["off"]] or results, out / f"{stem}.png")
    print(f"\n{'run':<40} {'img/s':>7} {'recognizable':>13} {'2x floor':>9} {'FID@end':>8}")
    for r in results:
        name = r["network"] + ("" if not r["off"] else " no " + "+".join(r["off"]))
        rec, two = r["seconds_to_recognizable"], r["seconds_to_2x_floor"]
        print(
            f"{name:<40} {r['images_per_s']:>7.0f} {rec if rec is not None else '-':>13} "
            f"{two if two is not None else '-':>9} {r['final']['fid']:>8.2f}"
        )
    print(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")


if __name__ == "__main__":
    main()
