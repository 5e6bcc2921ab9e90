"""Training statistics out: a JSON-lines log and TensorBoard, side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from ganforge.io.atomic import atomic_write_bytes


class MetricsLog:
    """Appends ``{"step": ..., **values}`` lines to ``metrics.jsonl`` and mirrors scalars and
    images to TensorBoard under ``tb/``. Opening at ``start_step`` drops anything logged after
    it (a run that resumes from an earlier checkpoint rewrites those steps)."""

    def __init__(self, run_dir: Path, start_step: int = 0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / "metrics.jsonl"
        if self.path.exists():
            kept = [
                line for line in self.path.read_text().splitlines() if _step(line) <= start_step
            ]
            atomic_write_bytes(self.path, "".join(line + "\n" for line in kept).encode())
        self._file = open(self.path, "a")  # noqa: SIM115 - closed in close()
        self.tb = SummaryWriter(
            str(run_dir / "tb"), purge_step=start_step + 1 if start_step else None
        )

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self._file.write(json.dumps({"step": step, **values}) + "\n")
        self._file.flush()
        for key, value in values.items():
            self.tb.add_scalar(key, value, step)

    def image(self, tag: str, grid_chw: Tensor, step: int) -> None:
        self.tb.add_image(tag, grid_chw, step)

    def close(self) -> None:
        self._file.close()
        self.tb.close()


def _step(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
