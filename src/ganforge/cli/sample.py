"""``ganforge sample`` and ``ganforge interpolate``: images from a trained generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.cli.flags import add_force, formatter, refuse_existing
from ganforge.errors import GanforgeError

SAMPLE_EXAMPLES = """examples:
  ganforge sample runs/demo -n 64 --out grid.png
  ganforge sample runs/cond --class 7 -n 100 --out sevens.png
  ganforge sample runs/demo -n 10000 --out samples.npz
  ganforge sample runs/demo/checkpoints/last.pt -n 50 --out pngs/   # one PNG per image
  ganforge sample runs/demo -n 16 --out signed/ --sign --watermark  # after 'ganforge keys init'
"""

INTERPOLATE_EXAMPLES = """examples:
  ganforge interpolate runs/demo --from 1 --to 2 --steps 12 --out walk.png
  ganforge interpolate runs/demo --from 1 --to 2 --steps 30 --out walk.gif
  ganforge interpolate runs/cond --class 3 --out threes.gif
"""


def add(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "sample",
        help="draw images from a trained generator",
        epilog=SAMPLE_EXAMPLES,
        description="Draw N images from a run's EMA generator: a grid PNG, a folder of PNGs "
        "(an --out with no suffix) or an .npz of uint8 NHWC images.",
        formatter_class=formatter,
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
    p = s.add_argument_group("provenance (a folder of PNGs)")
    p.add_argument(
        "--sign", action="store_true", help="a signed C2PA manifest in each PNG (see 'keys init')"
    )
    p.add_argument("--cert", metavar="PEM", help="signing certificate chain (default: test keys)")
    p.add_argument("--key", metavar="PEM", help="its private key (default: test keys)")
    p.add_argument("--watermark", action="store_true", help="hide the generator id in the pixels")
    add_force(s)
    s.set_defaults(run=run_sample)

    i = sub.add_parser(
        "interpolate",
        help="walk the latent space between two seeds",
        epilog=INTERPOLATE_EXAMPLES,
        description="Generate images along the path between the noise of two seeds: a PNG strip, "
        "or an animated GIF when --out ends in .gif.",
        formatter_class=formatter,
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
    add_force(i)
    i.set_defaults(run=run_interpolate)


def _run_folder(checkpoint: str) -> Path | None:
    """The run folder a RUN_DIR or a file in its checkpoints/ belongs to; None for a
    checkpoint file kept elsewhere."""
    path = Path(checkpoint)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else None


def _default_out(checkpoint: str, name: str) -> Path:
    """RUN_DIR/sampled/NAME; beside a checkpoint file that is not in a run's checkpoints/."""
    return (_run_folder(checkpoint) or Path(checkpoint).parent) / "sampled" / name


def run_sample(args: argparse.Namespace) -> int:
    from ganforge.sampling import load_generator, sample
    from ganforge.viz import save_images

    if (args.cert or args.key) and not args.sign:
        raise GanforgeError("--cert and --key are for --sign")
    key = None
    if args.sign:
        from ganforge.provenance.keys import load_signing_key

        key = load_signing_key(args.cert, args.key)  # before the work: a missing key fails fast
    gen = load_generator(args.checkpoint, args.device)
    images, labels = sample(gen, args.num, args.seed, args.class_label)
    if args.sign or args.watermark:
        return _stamped(args, gen, images, labels, key)
    out = Path(args.out) if args.out else _default_out(args.checkpoint, f"seed{args.seed}.png")
    if args.format == "png" or (args.format is None and not out.suffix):
        if out.exists():
            raise GanforgeError(f"{out} already exists; choose a new folder for individual PNGs")
    else:
        refuse_existing(out, args.force)
    fmt = save_images(images, out, args.format, labels, nrow=args.nrow)
    print(f"wrote {len(images)} images ({fmt}) to {out}")
    return 0


def _stamped(args, gen, images, labels, key) -> int:
    from ganforge.provenance.stamp import marked_payload, stamp_pngs
    from ganforge.sampling import generator_id

    out = Path(args.out) if args.out else _default_out(args.checkpoint, f"seed{args.seed}")
    if out.suffix or args.format not in (None, "png"):
        raise GanforgeError("--sign and --watermark write one PNG per image: give --out a folder")
    if out.exists():
        raise GanforgeError(f"{out} already exists; choose a new folder for individual PNGs")
    ident = generator_id(gen)
    folder = _run_folder(args.checkpoint)
    run = folder.resolve().name if folder else Path(args.checkpoint).stem
    stamp_pngs(images, out, ident, args.seed, labels, run, key, args.watermark)
    said = [f"generator {ident[:12]}"]
    if key is not None:
        said.append(f"signed with {key.source}")
    if args.watermark:
        said.append(f"watermark {marked_payload(ident)}")
    print(f"wrote {len(images)} PNGs to {out} ({', '.join(said)}); check them with: "
          f"ganforge verify {out}/*.png")  # fmt: skip
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from ganforge.sampling import interpolate, load_generator
    from ganforge.viz import save_gif, save_grid

    gen = load_generator(args.checkpoint, args.device)
    frames = interpolate(
        gen, args.seed_a, args.seed_b, args.steps, args.class_label, not args.linear
    )
    out = Path(args.out) if args.out else _default_out(args.checkpoint, "walk.png")
    refuse_existing(out, args.force)
    if out.suffix.lower() == ".gif":
        save_gif(frames, out)
    else:
        save_grid(frames, out, nrow=len(frames), upscale=2)
    print(f"wrote a {len(frames)}-step walk from seed {args.seed_a} to {args.seed_b} to {out}")
    return 0
