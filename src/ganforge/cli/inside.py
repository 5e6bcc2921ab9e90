"""``ganforge inside RUN layers|dissect|dream``: looking inside a trained generator."""

from __future__ import annotations

import argparse

from ganforge.cli.flags import formatter

EXAMPLES = """examples:
  ganforge inside runs/demo layers --seed 0 1 2 --out inside/layers
  ganforge inside runs/demo dissect --layer up1 --out inside/dissect
  ganforge inside runs/demo dream --target critic --space image --seed 3 --out inside/dream
  ganforge inside runs/demo dream --target up1:5 --out inside/dream-unit5
"""

DESCRIPTION = """\
layers   for each seed a PNG strip, one row per generator layer (shallow to deep): the image
         decoded from that layer by a linear probe fitted on the generator's own samples,
         then its most active channels' maps; the last row is the image. layers.json gives
         each layer's shape and the probe's held-out error.
dissect  for every unit of --layer: IoU of its top activations with digit concepts (stroke,
         top/middle/bottom, left/right, hole, loop, stem, bar, top bar, each class as the
         reference network reads it), and the effect of switching off the best k units for
         each concept against k random units. dissect.json, dissect.png, ablation.png.
dream    change the latent (or the image's pixels) until the critic finds the image more
         real, or a unit (--target LAYER:UNIT) fires harder; a PNG of the steps per seed with
         the critic's logit and what the reference network reads, and dream.json.
"""


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inside",
        help="look inside a trained generator: layers, unit dissection, dreams",
        epilog=EXAMPLES,
        description=DESCRIPTION,
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("what", choices=("layers", "dissect", "dream"))
    p.add_argument("--out", "-o", required=True, help="a new folder for the pictures")
    p.add_argument("--seed", type=int, nargs="+", default=[0], help="latent seeds (default 0)")
    p.add_argument("--class", dest="class_label", type=int, metavar="C", help="conditional: C")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    g = p.add_argument_group("layers")
    g.add_argument("--maps", type=int, default=6, help="channel maps per layer (default 6)")
    g.add_argument("--samples", type=int, help="probe samples (2000) / dissection samples (2000)")
    g = p.add_argument_group("dissect")
    g.add_argument("--layer", help="the layer to dissect (see 'layers' for the names)")
    g.add_argument(
        "--quantile", type=float, default=0.95,
        help="a unit is 'on' above this quantile of its activation (default 0.95)",
    )  # fmt: skip
    g.add_argument("--k", type=int, default=4, help="units switched off per concept (default 4)")
    g.add_argument("--top", type=int, default=12, help="units in dissect.png (default 12)")
    g = p.add_argument_group("dream")
    g.add_argument("--target", default="critic", help="critic (default) or LAYER:UNIT")
    g.add_argument("--space", choices=("latent", "image"), default="latent",
                   help="change the latent (default) or the image's pixels")  # fmt: skip
    g.add_argument("--steps", type=int, default=60, help="Adam steps (default 60)")
    g.add_argument("--lr", type=float, help="step size (latent 0.05, image 0.01)")
    p.set_defaults(run=run_inside)
    add_explore(sub)


def run_inside(args: argparse.Namespace) -> int:
    from ganforge.errors import GanforgeError
    from ganforge.inside import dissect_run, dream_run, render_layers

    samples = args.samples if args.samples is not None else 2000
    if args.what == "layers":
        report = render_layers(
            args.source, args.out, args.seed, args.maps, samples,
            class_label=args.class_label, device=args.device,
        )  # fmt: skip
        for row in report["layers"]:
            shape = str(tuple(row["shape"]))
            print(f"{row['layer']:>10s} {shape:>16s}  probe MSE {row['probe_mse']:.4f}")
        print(f"wrote {len(args.seed)} layer strip(s) and layers.json to {args.out}")
    elif args.what == "dissect":
        if not args.layer:
            raise GanforgeError("dissect needs --layer (see the names with 'inside RUN layers')")
        report = dissect_run(
            args.source, args.out, args.layer, samples, args.quantile, args.k, args.top,
            args.device,
        )  # fmt: skip
        from ganforge.inside.dissect import ablation_table

        print(f"layer {report['layer']}: {report['units']} units over {report['samples']} samples")
        print(ablation_table(report))
        print(f"wrote dissect.json, dissect.png and ablation.png to {args.out}")
    else:
        report = dream_run(
            args.source, args.out, args.seed, args.target, args.space, args.steps, args.lr,
            args.class_label, args.device,
        )  # fmt: skip
        for seed, d in report["dreams"].items():
            first, last = d["frames"][0], d["frames"][-1]
            reads = (f", reads {first['reads_as']} -> {last['reads_as']} (p {last['p']:.2f})"
                     if "reads_as" in last else "")  # fmt: skip
            print(f"seed {seed}: critic {first['critic_logit']:+.2f} -> "
                  f"{last['critic_logit']:+.2f}{reads}")  # fmt: skip
        print(f"wrote {len(args.seed)} dream picture(s) and dream.json to {args.out}")
    return 0


def add_explore(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explore",
        help="a local web page to play with a trained generator",
        epilog="example:\n  ganforge explore runs/demo --port 8050",
        description="Serve a page on this machine where you change the seed, walk latent\n"
        "directions (SeFa and class directions) with sliders, switch units off, paint with\n"
        "the brush, and watch the image and its layer strip change. Nothing is fetched from\n"
        "the internet; the page renders each change on this machine's CPU (or --device).",
        formatter_class=formatter,
    )
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, mps, auto")
    p.set_defaults(run=run_explore)


def run_explore(args: argparse.Namespace) -> int:
    from ganforge.inside.explorer import serve

    serve(args.source, args.host, args.port, args.device, ready=lambda m: print(m, flush=True))
    return 0
