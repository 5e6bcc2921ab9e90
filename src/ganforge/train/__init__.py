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
    if (run_dir / LAST).exists() or (run_dir / "config.yaml").exists():
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
    the network and data must stay those of the checkpoint.
    """
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir)
    cfg = merge(RunConfig.from_dict(state["config"]), overrides or {})
    return Trainer(cfg, run_dir, data=data, checkpoint=state, progress=progress).run()


__all__ = ["Trainer", "TrainResult", "default_run_dir", "resume", "train"]
