"""Checking files: the C2PA manifest first; where no valid one is left, the watermark."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganforge.errors import GanforgeError
from ganforge.provenance import watermark
from ganforge.provenance.signing import Verdict, trust_context, verify


def expected_payload(run_or_id: str) -> int:
    """The watermark payload of a run folder or checkpoint (its generator id), or of a
    generator id given as hex."""
    if Path(run_or_id).exists():
        from ganforge.sampling import generator_id, load_generator

        return watermark.payload_of(generator_id(load_generator(run_or_id)))
    text = run_or_id.strip().lower()
    if len(text) < 4 or any(c not in "0123456789abcdef" for c in text):
        raise GanforgeError(f"--expect {run_or_id!r} is neither a run folder nor a hex id")
    return watermark.payload_of(text)


def read_watermark(path: str | Path, expect: int | None = None) -> dict:
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB") if image.mode not in ("L", "RGB") else image)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise GanforgeError(f"{path} is not a readable image ({err})") from None
    reading = watermark.extract(pixels)
    out = {"found": reading.found, "payload": reading.hex, "distance": round(reading.distance, 4)}
    if expect is not None:
        out |= {"expected": f"{expect:04x}", "matches": reading.matches(expect)}
    return out


def verify_files(
    paths: list[str | Path], trust: bytes | None = None, expect: int | None = None
) -> list[Verdict]:
    """A verdict per file; files without a valid manifest also get their watermark read."""
    context = trust_context(trust)  # bad anchors: one error before any file
    verdicts = []
    for path in paths:
        verdict = verify(path, trust, context)
        if verdict.outcome in ("unsigned", "tampered"):
            try:
                verdict.watermark = read_watermark(path, expect)
            except GanforgeError as err:  # a truncated or tiny image: say so, go on
                verdict.watermark = {"found": False, "payload": None, "error": str(err)}
        verdicts.append(verdict)
    return verdicts
