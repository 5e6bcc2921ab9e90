"""The one way ganforge writes and reads ``.pt`` files: a dict of tensors and plain values,
written atomically, read back with ``weights_only=True`` so a file can never run code."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_save


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save(state)`` to ``path`` through a temporary file and a rename."""

    def write(tmp: Path) -> None:
        try:
            torch.save(state, tmp)
        except RuntimeError as err:  # torch's writer reports a full disk this way
            raise OSError(f"cannot write {path}: {str(err).splitlines()[0]}") from None

    atomic_save(path, write)


def load_safely(file: str | Path, fmt: str | tuple[str, ...], what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` onto the CPU of a dict whose ``format`` is ``fmt``
    (or one of them); anything else is a one-line error naming ``what`` it should be."""
    file = Path(file)
    formats = (fmt,) if isinstance(fmt, str) else fmt
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle headers first
            state = torch.load(file, map_location="cpu", weights_only=True)
    except IsADirectoryError:
        raise GanforgeError(f"{file} is a folder, not a {what}") from None
    except Exception:  # the safe unpickler raises many types on garbage; all mean "not ours"
        raise GanforgeError(f"{file} is not a readable {what} (corrupt or truncated)") from None
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise GanforgeError(f"{file} is not a {what}")
    return state
