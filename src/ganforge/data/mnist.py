"""MNIST from the four standard IDX files (optionally gzipped), held in memory."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from ganforge.data.images import ImageSet
from ganforge.errors import GanforgeError

SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ALL_FILES = [name for pair in SPLITS.values() for name in pair]
_MAGIC = {2051: 3, 2049: 1}  # images: 3 dimensions, labels: 1 (unsigned bytes)


def default_root() -> Path:
    """``$GANFORGE_DATA`` if set, else the per-user cache ``~/.cache/ganforge/mnist``."""
    env = os.environ.get("GANFORGE_DATA")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ganforge" / "mnist"


def find_file(root: Path, stem: str) -> Path | None:
    """Look for ``stem`` or ``stem.gz`` in ``root`` or torchvision's ``root/MNIST/raw``."""
    for folder in (root, root / "MNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes, checking magic number and length."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise GanforgeError(f"{path} is not a readable IDX file ({err})") from None
    if len(raw) < 4:
        raise GanforgeError(f"{path} is truncated: {len(raw)} bytes")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in _MAGIC:
        raise GanforgeError(f"{path} is not an MNIST IDX file (magic number {magic:#010x})")
    ndim = _MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise GanforgeError(f"{path} is truncated: the header is incomplete")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise GanforgeError(
            f"{path} is truncated or corrupt: {len(raw)} bytes, expected {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _download(root: Path) -> None:
    # torchvision creates root/MNIST/raw before it fetches; a failed download removes
    # whatever folders it created, so a mistyped --data-dir leaves nothing behind.
    missing = [p for p in (root / "MNIST", root, *root.absolute().parents) if not p.exists()]
    topmost_new = missing[-1] if missing else None
    try:
        from torchvision.datasets import MNIST

        MNIST(str(root), download=True)
    except Exception as err:  # no network, proxy, mirror down: all end the same way
        if topmost_new is not None:
            shutil.rmtree(topmost_new, ignore_errors=True)
        raise GanforgeError(
            f"MNIST files are missing and the download failed ({type(err).__name__}); put "
            f"{', '.join(f + '.gz' for f in ALL_FILES)} in {root} (or pass --data-dir / set "
            "GANFORGE_DATA)"
        ) from None


def load_mnist(
    root: str | Path | None = None, split: str = "train", download: bool = True
) -> ImageSet:
    """Load an MNIST split as an :class:`ImageSet` of uint8 (N, 1, 28, 28) images and labels."""
    if split not in SPLITS:
        raise GanforgeError(f"unknown MNIST split {split!r}; choose train or test")
    root = Path(root) if root else default_root()
    stems = SPLITS[split]
    paths = [find_file(root, s) for s in stems]
    if any(p is None for p in paths):
        if not download:
            missing = [s for s, p in zip(stems, paths, strict=True) if p is None]
            raise GanforgeError(
                f"MNIST files missing in {root}: {', '.join(missing)} (.gz or raw); put the four "
                "standard IDX files there, or pass --data-dir / set GANFORGE_DATA"
            )
        _download(root)
        paths = [find_file(root, s) for s in stems]
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise GanforgeError(f"MNIST files in {root} do not match: {images.shape} vs {labels.shape}")
    if labels.max(initial=0) > 9:
        raise GanforgeError(f"{paths[1]} holds labels outside 0..9")
    if images.shape[1:] != (28, 28):
        raise GanforgeError(
            f"{paths[0]} holds {images.shape[1]}x{images.shape[2]} images, not 28x28"
        )
    return ImageSet(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        class_names=[str(i) for i in range(10)],
        name=f"mnist-{split}",
    )
