"""PNG chunk surgery: what a forger does to a signed file (change pixels but keep the
manifest, edit the manifest, move it to another image). The tamper checks of the tests
and the provenance benchmark use it; C2PA keeps its manifest in a ``caBX`` chunk."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from ganforge.errors import GanforgeError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MANIFEST_CHUNK = b"caBX"


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """``(type, payload)`` of each chunk, in order."""
    if not data.startswith(SIGNATURE):
        raise GanforgeError("not a PNG file")
    out, at = [], len(SIGNATURE)
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        out.append((data[at + 4 : at + 8], data[at + 8 : at + 8 + length]))
        at += 12 + length
    return out


def build(parts: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG of these chunks, with correct lengths and CRCs."""
    body = b"".join(
        struct.pack(">I", len(payload)) + kind + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        for kind, payload in parts
    )  # fmt: skip
    return SIGNATURE + body


def with_pixels(data: bytes, pixels: np.ndarray) -> bytes:
    """The file with its image data replaced by ``pixels`` (uint8, the same size and
    8-bit gray or RGB mode), every other chunk, the manifest included, kept."""
    parts = chunks(data)
    rows = pixels.reshape(pixels.shape[0], -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row
    out, done = [], False
    for kind, payload in parts:
        if kind == b"IDAT":
            if not done:
                out.append((b"IDAT", zlib.compress(raw)))
                done = True
            continue
        out.append((kind, payload))
    return build(out)


def manifest_chunk(data: bytes) -> bytes | None:
    return next((p for k, p in chunks(data) if k == MANIFEST_CHUNK), None)


def with_manifest(data: bytes, manifest: bytes) -> bytes:
    """The file with its manifest chunk replaced by (or, without one, given) ``manifest``,
    placed right after the header."""
    parts = [(k, p) for k, p in chunks(data) if k != MANIFEST_CHUNK]
    return build([parts[0], (MANIFEST_CHUNK, manifest), *parts[1:]])
