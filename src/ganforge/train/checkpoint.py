"""Checkpoints: one ``torch.save`` dict of tensors and plain values, written atomically and
read back with ``weights_only=True`` so a checkpoint file can never run code.

Contents: ``config`` (resolved, as a dict), ``step``, ``data_spec``, ``class_names``, state
dicts of ``generator``, ``discriminator``, ``ema``, ``opt_g``, ``opt_d`` (and grad scalers),
``sampler`` position and ``rng`` states: everything needed to continue exactly.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.atomic import atomic_save
from ganforge.errors import GanforgeError

FORMAT = "ganforge-checkpoint-1"
LAST = Path("checkpoints") / "last.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    atomic_save(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file, or a run folder (its ``checkpoints/last.pt``)."""
    path = Path(path)
    if path.is_dir():
        if not (path / LAST).is_file():
            raise GanforgeError(f"{path} holds no checkpoint (expected {LAST} in it)")
        return path / LAST
    if not path.exists():
        raise GanforgeError(f"checkpoint or run folder {path} does not exist")
    return path


def load_safely(file: Path, fmt: str, what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` onto the CPU of a dict saved with ``format == fmt``;
    anything else is a one-line error naming ``what`` the file should have been."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle headers first
            state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception:  # the safe unpickler raises many types on garbage; all mean "not ours"
        raise GanforgeError(f"{file} is not a readable {what} (corrupt or truncated)") from None
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise GanforgeError(f"{file} is not a {what}")
    return state


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint (or a run folder's last one) onto the CPU, safely."""
    return load_safely(checkpoint_path(path), FORMAT, "ganforge checkpoint")


def load_state(module: nn.Module, state: dict[str, Any], what: str, network: str) -> None:
    """``module.load_state_dict`` with a one-line error when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise GanforgeError(
            f"the checkpoint's {what} weights do not fit network {network!r} ({detail})"
        ) from None
