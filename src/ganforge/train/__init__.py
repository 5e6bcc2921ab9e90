"""Training: the game loop, EMA, checkpoints, logging.

Entry points: :func:`train` (a new run) and :func:`resume` (continue one).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ganforge.config import RunConfig, merge
from ganforge.data import ImageSet
from ganforge.errors import GanforgeError
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.train.loop import Trainer, TrainResult

# What may change when a run continues; everything else would break "continue exactly".
RESUMABLE = {
    "train.steps",
    "train.epochs",
    "train.device",
    "train.amp",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "data.root",
    "data.download",
    "train.eval_every",
    "train.eval_samples",
}


def default_run_dir(cfg: RunConfig, root: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{cfg.data.name}-{cfg.model.network}-{stamp}"


def train(
    cfg: RunConfig,
    run_dir: str | Path | None = None,
    data: ImageSet | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a new run into ``run_dir`` (default ``runs/<data>-<network>-<time>``).

    Everything is validated (names, data, sizes) before the folder is created, so bad input
    leaves nothing behind.
    """
    run_dir = Path(run_dir) if run_dir else default_run_dir(cfg)
    if (run_dir / LAST).exists():
        raise GanforgeError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir} "
            "or pick another --out"
        )
    return Trainer(cfg, run_dir, data=data, progress=progress).run()


def resume(
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    data: ImageSet | None = None,
    progress: bool = True,
) -> TrainResult:
    """Continue a run from its last checkpoint, exactly where it stopped.

    ``overrides`` (``{"train": {"steps": 2000}}``) may extend the run or change the device;
    anything else (network, loss, seed, batch size ...) must stay that of the checkpoint.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise GanforgeError(f"--resume takes a run folder; {run_dir} is not one")
    state = load_checkpoint(run_dir)
    saved = state["config"]
    changed = {
        f"{section}.{key}"
        for section, values in (overrides or {}).items()
        for key, value in values.items()
        if saved.get(section, {}).get(key) != value
    }
    if "model.network" in changed:
        raise GanforgeError(
            f"the checkpoint was trained with network {saved['model']['network']!r}, "
            f"not {overrides['model']['network']!r}"
        )
    if changed - RESUMABLE:
        raise GanforgeError(
            "a resumed run keeps its configuration; cannot change "
            f"{', '.join(sorted(changed - RESUMABLE))} (only steps, epochs, device, amp, "
            "data location and logging cadence)"
        )
    cfg = merge(RunConfig.from_dict(saved), overrides or {})
    return Trainer(cfg, run_dir, data=data, checkpoint=state, progress=progress).run()


__all__ = ["Trainer", "TrainResult", "default_run_dir", "resume", "train"]
