"""Which process this is. Every file the engine writes goes through :func:`is_writer`, so
that a distributed run (torchrun, one process per device) lets rank 0 alone write."""

from __future__ import annotations

import torch.distributed as dist


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_writer() -> bool:
    return rank() == 0
