"""Engine checkpoints: everything needed to continue a run exactly.

One dict of tensors and plain values (:func:`ganforge.io.safe.save_state`), read back with
``weights_only=True``. Format 2: ``kind`` (the recipe), the recipe's header (a GAN's resolved
``config``, an estimator's ``settings``), ``step``, ``seconds`` (training time so far),
``players`` (each module's state dict), ``ema``, ``optimizers`` and ``scalers`` (by player),
``recipe`` (the recipe's own state: sampler position, best score ...), ``rng`` and ``stats``
(the logging window in progress). Format-1 GAN checkpoints (before the engine) are read by
converting them to format 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ganforge.errors import GanforgeError
from ganforge.io.safe import load_safely, save_state

FORMAT = "ganforge-checkpoint-2"
FORMAT_1 = "ganforge-checkpoint-1"
LAST = Path("checkpoints") / "last.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    save_state(path, {**state, "format": FORMAT})


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


def _from_format_1(state: dict[str, Any]) -> dict[str, Any]:
    """A GAN checkpoint written before the engine, in the engine's layout."""
    try:
        return {
            "format": FORMAT,
            "kind": "gan",
            "config": state["config"],
            "step": state["step"],
            "players": {"generator": state["generator"], "discriminator": state["discriminator"]},
            "ema": {"generator": state["ema"]},
            "optimizers": {"generator": state["opt_g"], "discriminator": state["opt_d"]},
            "scalers": {"generator": state["scaler_g"], "discriminator": state["scaler_d"]},
            "recipe": {
                "sampler": state["sampler"],
                "best_fid": state.get("best_fid", float("inf")),
                "data_spec": state["data_spec"],
                "class_names": state["class_names"],
            },
            "rng": state["rng"],
        }
    except KeyError as err:
        raise GanforgeError(f"an incomplete ganforge checkpoint (no {err})") from None


def load_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint (or a run folder's last one) onto the CPU, safely; ``kind`` checks
    which recipe wrote it."""
    file = checkpoint_path(path)
    state = load_safely(file, (FORMAT, FORMAT_1), "ganforge checkpoint")
    if state["format"] == FORMAT_1:
        state = _from_format_1(state)
    if kind is not None and state.get("kind") != kind:
        raise GanforgeError(f"{file} is a {state.get('kind')} checkpoint, not a {kind} one")
    return state


def load_state(module: nn.Module, state: dict[str, Any], what: str, network: str) -> None:
    """``module.load_state_dict`` with a one-line error when the weights do not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        lines = str(err).splitlines()
        detail = lines[1].strip() if len(lines) > 1 else str(err)
        raise GanforgeError(
            f"the checkpoint's {what} weights do not fit network {network!r} ({detail})"
        ) from None
