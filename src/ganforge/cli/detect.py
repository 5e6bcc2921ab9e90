"""``ganforge detect train`` and ``ganforge detect FILE...``: a real-or-generated detector."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import add_config_flags, add_run_options, formatter

EXAMPLES = """examples:
  ganforge detect train runs/demo --out runs/detector --augment --data-dir ../shared/datasets/mnist
  ganforge detect --model runs/detector image.png more/ --json scores.json
"""


def add(sub: argparse._SubParsersAction) -> None:
    from ganforge.detect.training import DetectorConfig

    d = sub.add_parser(
        "detect",
        help="tell generated images from real ones",
        epilog=EXAMPLES,
        description="Score image files (or folders of them) with a trained detector: the "
        "probability each was generated, and the call at the detector's calibrated threshold. "
        "'ganforge detect train RUN...' trains one on real images against the runs' samples.",
        formatter_class=formatter,
    )
    d.add_argument("files", nargs="+", metavar="FILE", help="images or folders of images")
    d.add_argument("--model", required=True, metavar="DIR", help="a 'detect train' folder")
    d.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    d.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    d.set_defaults(run=run_detect)

    t = sub.add_parser(
        "detect-train",  # typed as "detect train" (see route); unlisted
        prog="ganforge detect train",
        epilog=EXAMPLES,
        description="Train a detector of generated images: real training images against "
        "samples of the GAN runs named (as many of each), a held-out share calibrating its "
        "threshold. The folder gets detector.pt, summary.json, config.yaml and metrics.jsonl.",
        formatter_class=formatter,
    )
    t.add_argument("runs", nargs="+", metavar="RUN", help="GAN run folders or checkpoints")
    t.add_argument("--out", "-o", default="runs/detector", help="(default: runs/detector)")
    add_config_flags(t.add_argument_group("the detector"), DetectorConfig)
    add_run_options(t)
    t.set_defaults(run=run_train)


def route(argv: list[str]) -> list[str]:
    """``detect train ...`` is the hidden command ``detect-train ...``."""
    if len(argv) >= 2 and argv[0] == "detect" and argv[1] == "train":
        return ["detect-train", *argv[2:]]
    return argv


def run_train(args: argparse.Namespace) -> int:
    from ganforge.cli.flags import config_overrides
    from ganforge.config import merge
    from ganforge.detect import DetectorConfig, train_detector

    config = merge(DetectorConfig(), config_overrides(args, DetectorConfig))
    result = train_detector(
        args.out, args.runs, config, data_dir=args.data_dir, device=args.device,
        download=not args.no_download, progress=not args.quiet,
    )  # fmt: skip
    print(result.summary())
    return 0


def run_detect(args: argparse.Namespace) -> int:
    from ganforge.detect import detect_files, load_detector
    from ganforge.io.atomic import atomic_write_json

    detector = load_detector(args.model, args.device)
    rows = detect_files(detector, args.files)
    for row in rows:
        print(f"{row['file']}: {row['call']} (P(generated) {row['p_generated']:.3f})")
    generated = sum(r["call"] == "generated" for r in rows)
    print(f"{generated} of {len(rows)} called generated (threshold {detector.threshold:.3f})")
    if args.json:
        atomic_write_json(args.json, rows)
    return 0
