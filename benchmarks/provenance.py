"""Provenance on generated MNIST: signed manifests against tampering, and the watermark
against re-encoding.

    python benchmarks/provenance.py --data-dir ../shared/datasets/mnist --run runs/zoo/dcgan

Signing: ``--signed`` images (default 200) sampled with ``--sign`` under a fresh local test
authority; each is verified as made, with the authority as trust anchor, after one changed
pixel (the manifest kept), with the seed in its manifest changed, with the manifest of
the next image moved into it, and re-saved without the manifest.

Watermark: ``--marked`` generated images (default 10,000) carry the run's payload; bit
accuracy after a PNG round trip, JPEG 90/75/50, a 0.5x resize (read at twice the size),
and a 2-pixel crop of two edges (read with a 2-pixel search); the PSNR of the mark; and
on 10,000 real MNIST test images the share where a mark is *found* and the share that
*matches* the run's payload (``verify --expect``).

Results go to ``benchmarks/results/provenance.json``. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ganforge.detect import degrade
from ganforge.detect.training import generated_images
from ganforge.io.atomic import atomic_write_bytes
from ganforge.provenance import keys, png, signing, watermark
from ganforge.provenance.stamp import stamp_pngs
from ganforge.sampling import generator_id, load_generator, sample

RESULTS = Path(__file__).with_name("results") / "provenance.json"


def signing_table(run: Path, n: int) -> dict:
    gen = load_generator(run)
    ident = generator_id(gen)
    images, labels = sample(gen, n, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = keys.init_test_keys(Path(tmp) / "keys")
        key = keys.load_signing_key(folder / keys.CERT, folder / keys.KEY)
        trust = (folder / keys.CA).read_bytes()
        start = time.perf_counter()
        out = stamp_pngs(images, Path(tmp) / "signed", ident, 0, labels, run.name, key, True)
        sign_s = (time.perf_counter() - start) / n
        files = sorted(out.glob("*.png"))
        data = [f.read_bytes() for f in files]

        def outcome(blob: bytes, trust_: bytes | None = None) -> str:
            path = Path(tmp) / "probe.png"
            path.write_bytes(blob)
            return signing.verify(path, trust_).outcome

        def share(cases: list[str], wanted: str) -> float:
            return sum(c == wanted for c in cases) / len(cases)

        start = time.perf_counter()
        made = [outcome(d) for d in data]
        verify_s = (time.perf_counter() - start) / n
        trusted = [outcome(d, trust) for d in data]
        pixel, seed, moved, resaved = [], [], [], []
        for i, d in enumerate(data):
            pixels = np.asarray(Image.open(io.BytesIO(d))).copy()
            pixels[i % pixels.shape[0], (3 * i) % pixels.shape[1]] ^= 1
            pixel.append(outcome(png.with_pixels(d, pixels)))
            manifest = bytearray(png.manifest_chunk(d))
            at = manifest.find(b"seed")
            manifest[at + 4] ^= 1  # seed 0 -> 1 (a CBOR small integer)
            seed.append(outcome(png.with_manifest(d, bytes(manifest))))
            moved.append(outcome(png.with_manifest(d, png.manifest_chunk(data[(i + 1) % n]))))
            buf = io.BytesIO()
            Image.open(io.BytesIO(d)).save(buf, format="PNG")
            resaved.append(outcome(buf.getvalue()))
    return {
        "files": n,
        "signed_verify_valid": share(made, "untrusted"),
        "signed_verify_trusted_with_anchor": share(trusted, "trusted"),
        "one_pixel_changed_tampered": share(pixel, "tampered"),
        "manifest_seed_changed_tampered": share(seed, "tampered"),
        "manifest_moved_tampered": share(moved, "tampered"),
        "resaved_unsigned": share(resaved, "unsigned"),
        "seconds_to_sign_one": sign_s,
        "seconds_to_verify_one": verify_s,
        "bytes_per_manifest": sum(len(d) for d in data) / n
        - sum(len(_png(np.asarray(Image.open(io.BytesIO(d))))) for d in data) / n,
    }


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def watermark_table(run: Path, n: int, data_dir: str) -> dict:
    payload = watermark.payload_of(generator_id(load_generator(run)))
    clean = generated_images(run, n, 7_000_000)[..., 0]
    start = time.perf_counter()
    marked = watermark.embed(clean, payload)
    embed_s = (time.perf_counter() - start) / n
    snr = watermark.psnr(clean, marked)
    attacks = {
        "png": lambda x: np.stack([np.asarray(Image.open(io.BytesIO(_png(i)))) for i in x]),
        "jpeg90": lambda x: degrade.jpeg(x[..., None], 90)[..., 0],
        "jpeg75": lambda x: degrade.jpeg(x[..., None], 75)[..., 0],
        "jpeg50": lambda x: degrade.jpeg(x[..., None], 50)[..., 0],
        "resize0.5": lambda x: degrade.resize(x[..., None], 0.5, back=False)[..., 0],
        "crop2": lambda x: x[:, 2:, 2:],
    }
    rows = {}
    for name, attack in attacks.items():
        attacked = attack(marked)
        search = 2 if name == "crop2" else 0
        readings = [watermark.extract(a, search=search) for a in attacked]
        errors = np.array([watermark.bit_errors(r.payload, payload) for r in readings])
        rows[name] = {
            "bit_accuracy": float(1 - errors.mean() / watermark.BITS),
            "payload_exact": float((errors == 0).mean()),
            "matches": float(np.mean([r.matches(payload) for r in readings])),
            "found": float(np.mean([r.found for r in readings])),
        }
        print(name, rows[name])
    with gzip.open(Path(data_dir) / "t10k-images-idx3-ubyte.gz") as f:
        real = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    false = {}
    for search in (0, 2):
        readings = [watermark.extract(x, search=search) for x in real]
        false[f"search{search}"] = {
            "found": float(np.mean([r.found for r in readings])),
            "matches_run_payload": float(np.mean([r.matches(payload) for r in readings])),
        }
    print("false positives on real MNIST test:", false)
    return {
        "images": n,
        "payload_bits": watermark.BITS,
        "psnr_db": {
            "mean": float(snr.mean()),
            "min": float(snr.min()),
            "p5": float(np.percentile(snr, 5)),
        },  # fmt: skip
        "seconds_to_embed_one": embed_s,
        "attacks": rows,
        "false_positives_real_mnist_test": false,
        "real_images": len(real),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--run", type=Path, required=True, help="a GAN run folder on MNIST")
    p.add_argument("--signed", type=int, default=200)
    p.add_argument("--marked", type=int, default=10_000)
    args = p.parse_args()
    results = {"run": str(args.run), "signing": signing_table(args.run, args.signed)}
    print(json.dumps(results["signing"], indent=2))
    results["watermark"] = watermark_table(args.run, args.marked, args.data_dir)
    atomic_write_bytes(RESULTS, (json.dumps(results, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
