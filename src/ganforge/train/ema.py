"""Exponential moving average of the generator's weights, used for sampling."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``ema = decay * ema + (1 - decay) * weights`` after every generator step.

    The decay ramps up as ``(1 + t) / (10 + t)`` so that short runs are not dominated by the
    random initial weights. Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for ema_p, p in zip(self.model.parameters(), model.parameters(), strict=True):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers(), strict=True):
            ema_b.copy_(b)
