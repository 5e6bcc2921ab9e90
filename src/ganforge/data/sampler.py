"""Shuffled mini-batch indices whose position is two integers, so resume is exact."""

from __future__ import annotations

import torch
from torch import Tensor


class EpochSampler:
    """Yields index batches over a fresh permutation each epoch (the remainder is dropped).

    The permutation of epoch ``e`` is a pure function of ``(seed, e)``, so the whole state is
    ``(epoch, position)``. ``batch_size`` is the global batch: on ``world`` processes, process
    ``rank`` gets its share of it (``batch_size / world`` indices), so together they take the
    batch one process would, and the state is the same on all of them.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        rank: int = 0,
        world: int = 1,
    ):
        if size < batch_size:
            raise ValueError(f"batch size {batch_size} is larger than the dataset ({size} images)")
        if batch_size % world:
            raise ValueError(
                f"a batch of {batch_size} does not split evenly over {world} processes; "
                f"pass a batch size that is a multiple of {world}"
            )
        self.size, self.batch_size, self.seed, self.device = size, batch_size, seed, device
        self.share = batch_size // world
        self.offset = rank * self.share
        self.epoch, self.position = 0, 0
        self._perm: Tensor | None = None

    def _permutation(self) -> Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            self._perm = torch.randperm(self.size, generator=g).to(self.device)
        return self._perm

    def next(self) -> Tensor:
        if self.position + self.batch_size > self.size:
            self.epoch, self.position, self._perm = self.epoch + 1, 0, None
        start = self.position + self.offset
        index = self._permutation()[start : start + self.share]
        self.position += self.batch_size
        return index

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._perm = int(state["epoch"]), int(state["position"]), None
