"""Generated images written with their provenance: a C2PA manifest in each PNG, an
invisible watermark in its pixels, or both (the mark first, so the signature covers it)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ganforge.data.images import png_bytes, to_uint8
from ganforge.provenance import watermark
from ganforge.provenance.keys import SigningKey
from ganforge.provenance.signing import sign_png


def stamp_pngs(
    images: Tensor,
    out: str | Path,
    generator: str,
    seed: int,
    labels: Tensor | None = None,
    run: str | None = None,
    key: SigningKey | None = None,
    mark: bool = False,
) -> Path:
    """One PNG per image (float NCHW in [-1, 1]) in the new folder ``out``, each signed with
    ``key`` (its manifest: generator id, run, seed, index, class) and/or carrying the
    watermark of the generator id. The folder appears whole or not at all."""
    from ganforge.viz.grid import write_folder

    pixels = to_uint8(images).numpy()
    if mark:
        pixels = watermark.embed(pixels, watermark.payload_of(generator))

    def encode(i: int) -> tuple[str, bytes]:
        label = None if labels is None else int(labels[i])
        name = f"{i:05d}" + ("" if label is None else f"_class{label}") + ".png"
        data = png_bytes(pixels[i])
        if key is not None:
            generation = {"generator_id": generator, "run": run, "seed": seed, "index": i,
                          "class": label, "watermark": watermark.payload_of(generator) if mark
                          else None}  # fmt: skip
            data = sign_png(data, generation, key, name)
        return name, data

    write_folder(Path(out), len(pixels), encode)
    return Path(out)


def marked_payload(generator: str) -> str:
    return f"{watermark.payload_of(generator):04x}"
