"""Atomic file writes: write a temporary file in the same folder, fsync, then rename.

A crash or Ctrl-C mid-write leaves the previous file intact; readers never see half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.
    The file gets ``mode`` (default: what the umask allows); the temporary file is
    owner-only until then, so a 0600 file is never readable by others, not even briefly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes files owner-only
        os.chmod(tmp_path, 0o666 & ~current_umask() if mode is None else mode)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> None:
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)


def json_bytes(value: Any) -> bytes:
    """``value`` as indented JSON text ending in a newline, the form every report takes."""
    return (json.dumps(value, indent=2) + "\n").encode()


def atomic_write_json(path: str | Path, value: Any) -> None:
    atomic_write_bytes(path, json_bytes(value))


def atomic_save(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` only if it succeeded."""
    with atomic_path(path) as tmp:
        writer(tmp)
