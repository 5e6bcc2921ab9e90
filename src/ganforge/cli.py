"""The ``ganforge`` command: parse arguments, call the library, turn errors into one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError, Interrupted

TRAIN_EXAMPLES = """examples:
  ganforge train --data-dir ../shared/datasets/mnist --out runs/demo
  ganforge train --network mlp2014 --steps 20000 --batch-size 100
  ganforge train --network dcgan-cond --epochs 3 --out runs/cond
  ganforge train --dataset folder --data-dir ~/faces --image-size 64 --channels 3
  ganforge train --config my.yaml --seed 3
  ganforge train --resume runs/demo --steps 3000     # continue to step 3000
"""

SAMPLE_EXAMPLES = """examples:
  ganforge sample runs/demo -n 64 --out grid.png
  ganforge sample runs/cond --class 7 -n 100 --out sevens.png
  ganforge sample runs/demo -n 10000 --out samples.npz
  ganforge sample runs/demo/checkpoints/last.pt -n 50 --out pngs/   # one PNG per image
"""

INTERPOLATE_EXAMPLES = """examples:
  ganforge interpolate runs/demo --from 1 --to 2 --steps 12 --out walk.png
  ganforge interpolate runs/demo --from 1 --to 2 --steps 30 --out walk.gif
  ganforge interpolate runs/cond --class 3 --out threes.gif
"""


EVALUATE_EXAMPLES = """examples:
  ganforge evaluate runs/demo --data-dir ../shared/datasets/mnist
  ganforge evaluate samples.npz --no-parzen --out report.json
"""


REPRODUCE_EXAMPLES = """examples:
  ganforge reproduce goodfellow2014 --data-dir ../shared/datasets/mnist
  ganforge reproduce goodfellow2014 --steps 20000 --out runs/gf2014-long
  ganforge reproduce goodfellow2014 --out runs/gf2014   # again: continues or re-measures
"""

SEMISUPERVISED_EXAMPLES = """examples:
  ganforge semisupervised --data-dir ../shared/datasets/mnist --labels 100 --seeds 5
  ganforge semisupervised --labels 20 50 100 200 --seeds 5 --out runs/ssl-all
  ganforge semisupervised --labels 100 --seeds 5 --out runs/ssl   # again: continues
  ganforge semisupervised --seeds 2 --first-seed 3 --out runs/ssl-b  # seeds 3, 4 elsewhere
  ganforge semisupervised --combine runs/ssl runs/ssl-b   # one table of both folders
  ganforge semisupervised --epochs 300 --batch-size 100 --device cuda  # the paper's schedule
"""

CLASSIFY_EXAMPLES = """examples:
  ganforge classify runs/semisupervised my_digits/
  ganforge classify runs/semisupervised/models/labels100-seed3.pt my_digits/ --out preds.csv
"""

ATTACK_EXAMPLES = """examples:
  ganforge attack --model runs/robust --eps 0.3 --steps 100 --restarts 5
  ganforge attack --model runs/robust --eps 0.1 0.2 0.3 0.4 --steps 20 --restarts 1 -n 1000
  ganforge attack --model model.pt --norm l2 --eps 1 2 3 --out l2-report/
"""

ROBUST_TRAIN_EXAMPLES = """examples:
  ganforge robust-train --data-dir ../shared/datasets/mnist --out runs/robust
  ganforge robust-train --network convnet --method fast --out runs/fast
  ganforge robust-train --network softmax --method goodfellow2014 --eps 0.25 --out runs/gf
  ganforge robust-train --network mlp --method standard --epochs 5 --out runs/plain
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_mnist_run_options(p: argparse.ArgumentParser) -> None:
    """The options every MNIST experiment command (reproduce, semisupervised, attack,
    robust-train) shares."""
    p.add_argument("--data-dir", metavar="DIR", help="MNIST IDX folder (default: as for train)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.add_argument("--no-download", action="store_true", help="never download missing MNIST")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    from ganforge import __version__
    from ganforge.data import DATASETS
    from ganforge.losses import LOSSES
    from ganforge.nets import NETWORKS

    parser = argparse.ArgumentParser(
        prog="ganforge",
        description="Generative adversarial networks: train, sample, interpolate, evaluate "
        "and reproduce published results.",
        epilog="example:\n  ganforge train --data-dir ../shared/datasets/mnist --out runs/demo\n"
        "  ganforge sample runs/demo -n 64 --out grid.png\n\n"
        "'ganforge COMMAND --help' shows each command's options.",
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser(
        "train",
        help="train a GAN into a run folder",
        epilog=TRAIN_EXAMPLES,
        description="Train a generator and a discriminator against each other. The run folder "
        "gets config.yaml, checkpoints/, samples/, metrics.jsonl, tb/ (TensorBoard) "
        "and losses.png.",
        formatter_class=_formatter,
    )
    t.add_argument("--config", metavar="YAML", help="config file; flags override it")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument(
        "--out", metavar="DIR", help="run folder (default: runs/<data>-<network>-<time>)"
    )
    g = t.add_argument_group("data")
    g.add_argument("--dataset", help=f"one of: {', '.join(DATASETS)} (default mnist)")
    g.add_argument(
        "--data-dir",
        metavar="DIR",
        help="MNIST IDX folder or image folder "
        "(default: $GANFORGE_DATA, else ~/.cache/ganforge/mnist)",
    )
    g.add_argument(
        "--image-size", type=int, metavar="S", help="folder datasets: square size (default 64)"
    )
    g.add_argument("--channels", type=int, choices=(1, 3), help="folder datasets: 1 gray or 3 RGB")
    g.add_argument("--limit", type=int, metavar="N", help="use only the first N images")
    g.add_argument("--no-download", action="store_true", help="never download missing MNIST files")
    g = t.add_argument_group("model and loss")
    g.add_argument("--network", help=f"one of: {', '.join(NETWORKS)} (default dcgan)")
    g.add_argument("--z-dim", type=int, metavar="D", help="noise size (default: the network's)")
    g.add_argument("--width", type=int, help="base channel/unit count (default: the network's)")
    g.add_argument("--loss", help=f"one of: {', '.join(LOSSES)} (default nonsaturating)")
    g = t.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, help="generator steps (default 1600)")
    g.add_argument("--epochs", type=float, help="train this many passes over the data instead")
    g.add_argument("--batch-size", type=int, metavar="B", help="default 64")
    g.add_argument("--lr", type=float, help="learning rate (default: the network's)")
    g.add_argument("--optimizer", choices=("adam", "sgd"), help="default: the network's")
    g.add_argument("--k", type=int, help="discriminator steps per generator step (default 1)")
    g.add_argument("--ema-decay", type=float, metavar="DECAY", help="generator EMA (default 0.999)")
    g.add_argument("--seed", type=int, help="default 0")
    g = t.add_argument_group("running")
    g.add_argument("--device", help="auto (default), cpu, cuda, mps")
    g.add_argument("--amp", choices=("auto", "off", "bf16", "fp16"), help="mixed precision")
    g.add_argument(
        "--sample-every", type=int, metavar="N", help="write a sample grid every N steps"
    )
    g.add_argument("--checkpoint-every", type=int, metavar="N", help="checkpoint every N steps")
    g.add_argument("--log-every", type=int, metavar="N", help="log statistics every N steps")
    g.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="MNIST: log FID, KID, precision/recall, coverage every N steps; keep best.pt by FID",
    )
    g.add_argument("--eval-samples", type=int, metavar="N", help="samples per evaluation (2000)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser(
        "sample",
        help="draw images from a trained generator",
        epilog=SAMPLE_EXAMPLES,
        description="Draw N images from a run's EMA generator: a grid PNG, a folder of PNGs "
        "(an --out with no suffix) or an .npz of uint8 NHWC images.",
        formatter_class=_formatter,
    )
    s.add_argument("checkpoint", metavar="RUN_DIR|CHECKPOINT")
    s.add_argument("-n", "--num", type=int, default=64, help="number of images (default 64)")
    s.add_argument(
        "--out", "-o", help="output file or folder (default: RUN_DIR/sampled/seed<S>.png)"
    )
    s.add_argument("--format", choices=("grid", "png", "npz"), help="default: from --out's suffix")
    s.add_argument(
        "--class", dest="class_label", type=int, metavar="C", help="conditional: only class C"
    )
    s.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    s.add_argument("--nrow", type=int, help="images per grid row")
    s.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")

    i = sub.add_parser(
        "interpolate",
        help="walk the latent space between two seeds",
        epilog=INTERPOLATE_EXAMPLES,
        description="Generate images along the path between the noise of two seeds: a PNG strip, "
        "or an animated GIF when --out ends in .gif.",
        formatter_class=_formatter,
    )
    i.add_argument("checkpoint", metavar="RUN_DIR|CHECKPOINT")
    i.add_argument("--from", dest="seed_a", type=int, default=0, help="start seed (default 0)")
    i.add_argument("--to", dest="seed_b", type=int, default=1, help="end seed (default 1)")
    i.add_argument("--steps", type=int, default=10, help="images along the path (default 10)")
    i.add_argument(
        "--class", dest="class_label", type=int, metavar="C", help="conditional: class C"
    )
    i.add_argument("--linear", action="store_true", help="straight line instead of spherical")
    i.add_argument("--out", "-o", help="a .png strip or .gif (default: RUN_DIR/sampled/walk.png)")
    i.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    e = sub.add_parser(
        "evaluate",
        help="measure samples against MNIST, beside real-data floors",
        epilog=EVALUATE_EXAMPLES,
        formatter_class=_formatter,
        description="FID and KID on the reference MNIST network's features, precision/recall "
        "(k=3), classifier score, class coverage, memorization and the 2014 paper's Parzen "
        "log-likelihood, each beside the same metric for 10,000 real training images.",
    )
    e.add_argument("source", metavar="RUN_DIR|CHECKPOINT|IMAGES.npz|FOLDER")
    e.add_argument("-n", "--num", type=int, default=10_000, help="samples from a generator")
    e.add_argument("--data-dir", metavar="DIR", help="MNIST IDX folder (default: as for train)")
    e.add_argument("--no-parzen", action="store_true", help="skip the Parzen estimate")
    e.add_argument(
        "--inception",
        metavar="PTH",
        help="also FID/KID/IS on Inception-v3, from pytorch-fid's pt_inception-2015-12-05 file",
    )
    e.add_argument(
        "--out",
        "-o",
        help="JSON report (default: RUN_DIR/evaluation.json or <source>-evaluation.json)",
    )
    from ganforge.reproduce import REPRODUCTIONS

    r = sub.add_parser(
        "reproduce",
        help="re-run a published experiment and print our numbers beside the paper's",
        epilog=REPRODUCE_EXAMPLES,
        formatter_class=_formatter,
        description="Train a paper's model with ganforge, measure it with the paper's protocol "
        "and print the paper's table beside ours and the real-data floor. Known: "
        + "; ".join(f"{n}: {REPRODUCTIONS.get(n).description}" for n in REPRODUCTIONS.names()),
    )
    r.add_argument("name", metavar="NAME", help="one of: " + ", ".join(REPRODUCTIONS.names()))
    r.add_argument("--out", "-o", help="run folder (default: runs/NAME)")
    r.add_argument("--steps", type=int, help="generator steps (default: the recipe's)")
    r.add_argument("-n", "--num", type=int, default=10_000, help="samples to measure (10000)")
    _add_mnist_run_options(r)

    from ganforge.semisupervised import Settings

    ss = sub.add_parser(
        "semisupervised",
        help="MNIST classifier from a few labels with a GAN, beside its baselines",
        epilog=SEMISUPERVISED_EXAMPLES,
        formatter_class=_formatter,
        description="Train the semi-supervised GAN of Salimans et al. (2016) on MNIST with N "
        "labelled images (N/10 per class, chosen by seed) and all 60,000 unlabelled ones, for "
        "each seed; train the same classifier on the N labels alone and on all 60,000; print "
        "test errors out of 10,000 (mean ± std over seeds) beside the published results. "
        "Results are saved after every seed; the same command again continues.",
    )
    defaults = Settings()
    ss.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[100],
        metavar="N",
        help="labelled counts, multiples of 10 (default: 100)",
    )
    ss.add_argument("--seeds", type=int, default=5, help="seeds per count (default: 5)")
    ss.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="number of the first seed, to split seeds across folders or machines (default: 0)",
    )
    ss.add_argument(
        "--combine",
        nargs="+",
        metavar="FOLDER",
        help="train nothing; print the table of these run folders' results together "
        "(seeds split with --first-seed)",
    )
    ss.add_argument(
        "--epochs",
        type=float,
        default=defaults.epochs,
        help=f"passes over the 60,000 unlabelled images (default: {defaults.epochs:g})",
    )
    ss.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help=f"images of each kind per GAN update (default: {defaults.batch_size})",
    )
    ss.add_argument(
        "--out",
        "-o",
        default="runs/semisupervised",
        help="run folder (default: runs/semisupervised)",
    )
    _add_mnist_run_options(ss)

    c = sub.add_parser(
        "classify",
        help="label a folder of images with a saved classifier",
        epilog=CLASSIFY_EXAMPLES,
        formatter_class=_formatter,
        description="Apply a classifier saved by 'ganforge semisupervised' (or by "
        "SemiSupervisedGAN.save) to every image under FOLDER and write path,label,confidence "
        "rows to a CSV. Sub-folders named by the labels (0/, 1/ ...) also give the accuracy.",
    )
    c.add_argument("model", metavar="MODEL", help="classifier .pt file, or a run folder")
    c.add_argument("folder", metavar="FOLDER", help="folder of images (png, jpg ...)")
    c.add_argument("--out", "-o", help="CSV to write (default: FOLDER-predictions.csv)")
    _add_robustness_commands(sub)
    return parser


def _add_robustness_commands(sub: Any) -> None:
    from ganforge.data import SPLIT_DATASETS
    from ganforge.robustness import CLASSIFIERS, RobustTrainConfig
    from ganforge.robustness.training import METHODS

    a = sub.add_parser(
        "attack",
        help="attack a classifier and measure its robust accuracy, checked for masking",
        epilog=ATTACK_EXAMPLES,
        formatter_class=_formatter,
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
    _add_mnist_run_options(a)

    d = RobustTrainConfig()
    t = sub.add_parser(
        "robust-train",
        help="train a classifier that resists adversarial examples",
        epilog=ROBUST_TRAIN_EXAMPLES,
        formatter_class=_formatter,
        description="Train a classifier on attacked inputs: fast (FGSM from a random start, "
        "Wong et al., 2020), pgd (Madry et al., 2017), goodfellow2014 (half clean, half FGSM "
        "loss) or standard (no attack). After each epoch PGD runs on held-out training images; "
        "the most robust epoch (for standard: the most accurate) is kept as OUT/model.pt.",
    )
    t.add_argument(
        "--network",
        default=d.network,
        help=f"one of: {', '.join(CLASSIFIERS.names())} (default: {d.network})",
    )
    t.add_argument("--method", choices=METHODS, default=d.method, help=f"(default: {d.method})")
    t.add_argument("--eps", type=float, default=d.eps, help=f"L-inf radius (default: {d.eps:g})")
    t.add_argument("--epochs", type=float, default=d.epochs, help=f"(default: {d.epochs:g})")
    t.add_argument("--lr", type=float, default=d.lr, help=f"Adam's peak rate (default: {d.lr:g})")
    t.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"(default: {d.batch_size})"
    )
    t.add_argument(
        "--alpha",
        type=float,
        help="attack step (default: 1.25 eps for fast, 2.5 eps / steps for pgd)",
    )
    t.add_argument(
        "--pgd-steps",
        type=int,
        default=d.pgd_steps,
        help=f"PGD steps for --method pgd (default: {d.pgd_steps})",
    )
    t.add_argument(
        "--eps-warmup",
        type=float,
        default=d.eps_warmup,
        help=f"epochs to ramp epsilon up from 0 (default: {d.eps_warmup:g})",
    )
    t.add_argument(
        "--dataset", choices=SPLIT_DATASETS, default=d.dataset, help=f"(default: {d.dataset})"
    )
    t.add_argument(
        "--held-out",
        type=int,
        default=d.held_out,
        help=f"training images set aside to pick the epoch kept (default: {d.held_out})",
    )
    t.add_argument("--seed", type=int, default=d.seed, help=f"(default: {d.seed})")
    t.add_argument("--out", "-o", default="runs/robust", help="run folder (default: runs/robust)")
    _add_mnist_run_options(t)


def _train_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the user gave, as ``{"section": {"key": value}}``."""
    table = {
        "data": {
            "dataset": "name",
            "data_dir": "root",
            "image_size": "image_size",
            "channels": "channels",
            "limit": "limit",
        },
        "model": {"network": "network", "z_dim": "z_dim", "width": "width"},
        "loss": {"loss": "name"},
        "optim": {"optimizer": "optimizer", "lr": "lr"},
        "train": {
            "steps": "steps",
            "epochs": "epochs",
            "batch_size": "batch_size",
            "k": "k",
            "seed": "seed",
            "ema_decay": "ema_decay",
            "device": "device",
            "amp": "amp",
            "sample_every": "sample_every",
            "checkpoint_every": "checkpoint_every",
            "log_every": "log_every",
            "eval_every": "eval_every",
            "eval_samples": "eval_samples",
        },
    }
    out: dict[str, Any] = {}
    for section, keys in table.items():
        values = {
            key: getattr(args, flag)
            for flag, key in keys.items()
            if getattr(args, flag) is not None
        }
        if values:
            out[section] = values
    if args.no_download:
        out.setdefault("data", {})["download"] = False
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from ganforge.config import RunConfig, load_yaml, merge
    from ganforge.train import resume, train

    overrides = _train_overrides(args)
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
    if result.interrupted:
        print(
            f"interrupted at step {result.steps}; checkpoint saved. Continue with: "
            f"ganforge train --resume {where}",
            file=sys.stderr,
        )
        return 130
    print(
        f"trained to step {result.steps} in {result.seconds:.1f} s "
        f"({result.images_per_second:.0f} images/s); samples: {where / 'samples.png'}"
    )
    return 0


def _default_out(checkpoint: str, name: str) -> Path:
    path = Path(checkpoint)
    run_dir = path if path.is_dir() else path.parent.parent
    return run_dir / "sampled" / name


def cmd_sample(args: argparse.Namespace) -> int:
    from ganforge.sampling import load_generator, sample
    from ganforge.viz import save_images

    gen = load_generator(args.checkpoint, args.device)
    images, labels = sample(gen, args.num, args.seed, args.class_label)
    out = Path(args.out) if args.out else _default_out(args.checkpoint, f"seed{args.seed}.png")
    if out.exists() and (args.format == "png" or (args.format is None and not out.suffix)):
        raise GanforgeError(f"{out} already exists; choose a new folder for individual PNGs")
    fmt = save_images(images, out, args.format, labels, nrow=args.nrow)
    print(f"wrote {len(images)} images ({fmt}) to {out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from ganforge.sampling import interpolate, load_generator
    from ganforge.viz import save_gif, save_grid

    gen = load_generator(args.checkpoint, args.device)
    frames = interpolate(
        gen, args.seed_a, args.seed_b, args.steps, args.class_label, not args.linear
    )
    out = Path(args.out) if args.out else _default_out(args.checkpoint, "walk.png")
    if out.suffix.lower() == ".gif":
        save_gif(frames, out)
    else:
        save_grid(frames, out, nrow=len(frames), upscale=2)
    print(f"wrote a {len(frames)}-step walk from seed {args.seed_a} to {args.seed_b} to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from ganforge.io.atomic import atomic_write_bytes
    from ganforge.metrics.evaluate import evaluate, format_table

    if args.num < 2:
        raise GanforgeError(f"--num must be at least 2, got {args.num}")
    result, floor = evaluate(
        args.source, args.data_dir, args.num, not args.no_parzen, inception=args.inception
    )
    print(format_table(result, floor))
    source = Path(args.source)
    out = (
        Path(args.out)
        if args.out
        else (
            source / "evaluation.json"
            if (source / "checkpoints").is_dir()
            else source.with_name(source.stem + "-evaluation.json")
        )
    )
    report = {"source": str(source), "samples": result, "real_floor": floor}
    atomic_write_bytes(out, json.dumps(report, indent=2).encode())
    print(f"wrote {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from ganforge.reproduce import REPRODUCTIONS

    reproduction = REPRODUCTIONS.get(args.name)
    options: dict[str, Any] = {"steps": args.steps} if args.steps is not None else {}
    result = reproduction.run(
        args.out or Path("runs") / args.name,
        data_dir=args.data_dir,
        samples=args.num,
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
        **options,
    )
    print(result.summary())
    return 0


def cmd_semisupervised(args: argparse.Namespace) -> int:
    from ganforge.semisupervised import Settings, run_experiment

    if args.combine:
        from ganforge.semisupervised import combine_reports

        print(combine_reports(args.combine).table())
        return 0
    report = run_experiment(
        args.out,
        data_dir=args.data_dir,
        labels=tuple(args.labels),
        seeds=args.seeds,
        first_seed=args.first_seed,
        settings=Settings(epochs=args.epochs, batch_size=args.batch_size),
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
    )
    print(report.table())
    print(f"wrote {Path(args.out) / 'semisupervised.json'}")
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from ganforge.semisupervised.classify import classify_folder

    print(classify_folder(args.model, args.folder, args.out).summary())
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
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
    )
    print(report.table())
    print(f"wrote {out / 'robustness.json'}, robustness.png and examples.png")
    return 0


def cmd_robust_train(args: argparse.Namespace) -> int:
    from ganforge.robustness import RobustTrainConfig, robust_train

    config = RobustTrainConfig(
        network=args.network,
        method=args.method,
        eps=args.eps,
        alpha=args.alpha,
        pgd_steps=args.pgd_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        eps_warmup=args.eps_warmup,
        dataset=args.dataset,
        held_out=args.held_out,
        seed=args.seed,
    )
    result = robust_train(
        args.out,
        config,
        data_dir=args.data_dir,
        device=args.device,
        download=not args.no_download,
        progress=not args.quiet,
    )
    print(result.summary())
    return 0


COMMANDS = {
    "train": cmd_train,
    "sample": cmd_sample,
    "interpolate": cmd_interpolate,
    "evaluate": cmd_evaluate,
    "reproduce": cmd_reproduce,
    "semisupervised": cmd_semisupervised,
    "classify": cmd_classify,
    "attack": cmd_attack,
    "robust-train": cmd_robust_train,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except GanforgeError as err:
        print(f"ganforge: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # unwritable folder, full disk, a file where a folder should be
        print(f"ganforge: error: {err}", file=sys.stderr)
        return 1
    except Interrupted as err:
        print(f"ganforge: {err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
