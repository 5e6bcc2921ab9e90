"""Looking inside a trained MNIST generator (issue 23): dissection figures, the paintbrush,
dreams, and the explorer's render latency and screenshot.

    python benchmarks/inside.py --run runs/zoo/dcgan

The run is any dcgan trained on MNIST; the published figures use the detector benchmark's
zoo ``dcgan`` (``python benchmarks/detector_generalization.py --data-dir
../shared/datasets/mnist zoo``: 3,000 steps, seed 0). Writes ``results/inside.json`` and the
README's pictures ``results/inside_{dissect,ablation,paint,dream,explorer}.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganforge.inside.concepts import digit_concepts
from ganforge.inside.dissect import ablation_plot, dissect, dissection_picture
from ganforge.inside.dream import dream, dream_picture
from ganforge.inside.explorer import Explorer, bind, make_app
from ganforge.inside.paintbrush import before_after_picture, box_mask, paint
from ganforge.inside.units import unit_levels
from ganforge.io.atomic import atomic_write_bytes
from ganforge.sampling import load_critic, noise

RESULTS = Path(__file__).with_name("results")


def save_png(picture: np.ndarray, name: str) -> None:
    Image.fromarray(picture).save(RESULTS / name)


def dissection_figures(gen, layers: list[str], k: int) -> dict:
    out = {}
    for layer in layers:
        start = time.perf_counter()
        result = dissect(gen, layer, samples=2000, k=k, progress=True)
        seconds = time.perf_counter() - start
        report = result.report()
        rows = report["ablation"]
        ratio = [r["effect_top_k"] / max(r["effect_random_mean"], 1e-3) for r in rows]
        out[layer] = {
            "seconds": round(seconds, 1),
            "top_units": report["ranked"][:10],
            "best_per_concept": report["best_per_concept"],
            "ablation": rows,
            "median_top_over_random": round(statistics.median(ratio), 2),
            "concepts_where_top_k_beats_random_by_2sd": sum(
                r["effect_top_k"] > r["effect_random_mean"] + 2 * r["effect_random_sd"]
                for r in rows
            ),
            "concepts": len(rows),
        }
        if layer == layers[-1]:
            save_png(dissection_picture(result, top=8), "inside_dissect.png")
            (RESULTS / "inside_ablation.png").write_bytes(ablation_plot(result))
        print(f"{layer}: dissected in {seconds:.1f} s; median top-k/random "
              f"{out[layer]['median_top_over_random']}")  # fmt: skip
    return out


def _units(dissection: dict, concept: str) -> list[int]:
    return next(r["units"] for r in dissection["ablation"] if r["concept"] == concept)


def paint_examples(gen, dissection: dict, layers: list[str], seeds: int = 20) -> dict:
    """Insert each layer's stroke units in an empty box; remove its loop units over a
    digit's loop. Figures over the first ``seeds`` seeds that qualify; the picture shows the
    first of them (insert at the shallow layer, remove at the deeper one)."""
    size = gen.spec.image_size
    add = box_mask(size, 3, 17, 8, 8)
    report, pictures = {}, {}
    for layer in layers:
        levels = unit_levels(gen, layer, 1000)
        stroke_units, loop_units = (
            _units(dissection[layer], "stroke"),
            _units(dissection[layer], "loop"),
        )
        ink, outside, kept = [], [], []
        for seed in range(500):
            if len(ink) < seeds:
                before, after = paint(gen, seed, layer, stroke_units, add, "insert", levels=levels)
                if (before[0, 0][add] < 0).all():  # an empty box
                    ink.append(float(((after[0, 0] > 0) & add).sum() / add.sum()))
                    outside.append(float(((after - before).abs()[0, 0][~add] > 1 / 127.5).mean(
                        dtype=torch.float32)))  # fmt: skip
                    pictures.setdefault(("insert", layer), before_after_picture(before, after, add))
            if len(kept) < seeds:
                loop = digit_concepts(gen(noise(1, gen.z_dim, seed)))["loop"][0]
                if loop.sum() >= 20:
                    mask = torch.nn.functional.max_pool2d(loop.float()[None, None], 3, 1, 1)[0, 0]
                    before, after = paint(gen, seed, layer, loop_units, mask > 0, "remove")
                    holes = [digit_concepts(x)["hole"].sum() for x in (before, after)]
                    kept.append(float(holes[1] / holes[0].clamp_min(1)))
                    pictures.setdefault(("remove", layer),
                                        before_after_picture(before, after, mask > 0))  # fmt: skip
        report[layer] = {
            "insert_units": stroke_units, "remove_units": loop_units,
            "insert_ink_in_box_mean": round(statistics.mean(ink), 3),
            "insert_pixels_changed_outside_box_mean": round(statistics.mean(outside), 3),
            "remove_hole_area_kept_mean": round(statistics.mean(kept), 3),
            "seeds": seeds,
        }  # fmt: skip
        print(f"paint at {layer}: {report[layer]}")
    rows = [pictures[("insert", layers[0])], pictures[("remove", layers[-1])]]
    pad = np.full((8, rows[0].shape[1], 3), 255, np.uint8)
    save_png(np.concatenate([rows[0], pad, rows[1]]), "inside_paint.png")
    return report


def dream_examples(gen, critic, seed: int) -> dict:
    pictures, report = [], {}
    for space in ("latent", "image"):
        result = dream(gen, critic, seed, "critic", space, steps=60)
        pictures.append(dream_picture(result))
        report[space] = result.report()
    width = max(p.shape[1] for p in pictures)
    padded = [np.pad(p, ((0, 6), (0, width - p.shape[1]), (0, 0)), constant_values=255)
              for p in pictures]  # fmt: skip
    save_png(np.concatenate(padded), "inside_dream.png")
    return report


def explorer_latency(gen, n: int = 100) -> dict:
    start = time.perf_counter()
    explorer = Explorer(gen)
    prepare = time.perf_counter() - start
    size = gen.spec.image_size
    mask = "".join("1" if 5 <= i // size <= 8 and 8 <= i % size <= 20 else "0"
                   for i in range(size * size))  # fmt: skip
    layer = list(explorer.shapes)[-1]
    kinds = {
        "seed": lambda i: {"seed": i},
        "walk": lambda i: {"seed": 1, "walk": {"sefa 1": (i % 9) - 4, "class 3": 1.5}},
        "units off": lambda i: {"seed": 2, "off": {layer: list(range(i % 8))}},
        "paint": lambda i: {"seed": 3, "strokes": [{"layer": layer, "mode": "insert",
                            "units": explorer.brush_units[layer], "mask": mask}]},
    }  # fmt: skip
    out = {"prepare_seconds": round(prepare, 1)}
    for name, make in kinds.items():
        times = []
        for i in range(n):
            t = time.perf_counter()
            explorer.render(make(i))
            times.append(1000 * (time.perf_counter() - t))
        out[name] = {"median_ms": round(statistics.median(times), 1),
                     "p95_ms": round(float(np.percentile(times, 95)), 1)}  # fmt: skip
        print(f"explorer render ({name}): median {out[name]['median_ms']} ms")
    return out, explorer


def explorer_screenshot(explorer: Explorer, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    server = bind("127.0.0.1", 0, make_app(explorer))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1180, "height": 860})
            page.goto(f"http://127.0.0.1:{server.server_port}/")
            idle = "document.body.dataset.idle === '1'"
            page.wait_for_function(idle)
            page.fill("#seed", "7")
            page.dispatch_event("#seed", "change")
            page.wait_for_function(idle)
            page.fill("#dir-0", "1.5")
            page.wait_for_function(idle)
            page.select_option("#brush-layer", list(explorer.shapes)[0])
            box = page.locator("#brush").bounding_box()
            page.mouse.move(box["x"] + 215, box["y"] + 150)
            page.mouse.down()
            page.mouse.move(box["x"] + 225, box["y"] + 250, steps=10)
            page.mouse.up()
            page.wait_for_function(idle)
            page.screenshot(path=str(RESULTS / "inside_explorer.png"))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a dcgan run folder trained on MNIST")
    parser.add_argument("--k", type=int, default=4, help="units switched off per concept")
    parser.add_argument("--dream-seed", type=int, default=3)
    parser.add_argument("--chromium", default=os.environ.get("GANFORGE_CHROMIUM")
                        or shutil.which("chromium"))  # fmt: skip
    args = parser.parse_args()
    torch.manual_seed(0)
    gen, critic = load_critic(args.run)
    layers = [name for name, _ in gen.generator.layers()][:2]
    report = {"run": args.run, "step": gen.step, "machine": platform.processor() or
              platform.machine(), "threads": torch.get_num_threads()}  # fmt: skip
    report["dissection"] = dissection_figures(gen, layers, args.k)
    report["paint"] = paint_examples(gen, report["dissection"], layers)
    report["dream"] = dream_examples(gen, critic, args.dream_seed)
    report["explorer"], explorer = explorer_latency(gen)
    if args.chromium:
        explorer_screenshot(explorer, args.chromium)
    atomic_write_bytes(RESULTS / "inside.json", (json.dumps(report, indent=2) + "\n").encode())
    print(f"wrote {RESULTS / 'inside.json'}")


if __name__ == "__main__":
    main()
