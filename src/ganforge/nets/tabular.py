"""CTGAN's networks (Xu et al., 2019) for encoded table rows (:mod:`ganforge.data.table_encoding`).

Generator: ``z`` and the conditional vector through residual blocks (each concatenates its
input with ``ReLU(BN(Linear(x)))``), then a linear map to the row; :func:`activate` applies
tanh to the alphas and a Gumbel-softmax to each one-hot. Critic: PacGAN packing (Lin et al.,
2018): ``pac`` rows and their conditions side by side as one input, two LeakyReLU(0.2) +
dropout(0.5) layers, one score. A private run uses ``pac=1`` (each record its own input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError


class Residual(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc, self.bn = nn.Linear(cin, cout), nn.BatchNorm1d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class TableGenerator(nn.Module):
    """(N, z_dim) noise and (N, cond_dim) conditions -> (N, row_dim) raw outputs."""

    def __init__(self, z_dim: int, cond_dim: int, row_dim: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.z_dim, self.cond_dim = z_dim, cond_dim
        layers, width = [], z_dim + cond_dim
        for w in widths:
            layers.append(Residual(width, w))
            width += w
        self.body = nn.Sequential(*layers, nn.Linear(width, row_dim))

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.body(z if cond is None or cond.shape[1] == 0 else torch.cat([z, cond], 1))


class TableCritic(nn.Module):
    """(N, row_dim) rows and (N, cond_dim) conditions, N a multiple of ``pac`` ->
    (N / pac,) scores."""

    def __init__(self, row_dim: int, cond_dim: int, widths: Sequence[int], pac: int) -> None:
        super().__init__()
        self.pac = pac
        layers, width = [], (row_dim + cond_dim) * pac
        for w in widths:
            layers += [nn.Linear(width, w), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            width = w
        self.body = nn.Sequential(*layers, nn.Linear(width, 1))

    def forward(self, rows: Tensor, cond: Tensor | None = None) -> Tensor:
        x = rows if cond is None or cond.shape[1] == 0 else torch.cat([rows, cond], 1)
        if len(x) % self.pac:
            raise GanforgeError(f"the critic packs {self.pac} rows; got a batch of {len(x)}")
        return self.body(x.reshape(len(x) // self.pac, -1)).squeeze(1)


def activate(
    raw: Tensor, spans, tau: float = 0.2, hard: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:  # fmt: skip
    """The generator's row: tanh on alpha spans, Gumbel-softmax (temperature ``tau``) on
    one-hot spans. ``hard``: each one-hot a category *drawn* from the softmax (the argmax of
    Gumbel-perturbed logits, from ``generator``), as rows are sampled; the argmax of the
    logits alone would give every row the most likely category."""
    parts = []
    for s in spans:
        x = raw[:, s.start : s.start + s.size]
        if s.activation == "tanh":
            parts.append(torch.tanh(x))
        elif hard:
            u = torch.rand(x.shape, generator=generator, dtype=torch.float32).to(x.device)
            gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1 - 1e-7)))
            parts.append(F.one_hot((x + gumbel).argmax(1), s.size).to(x.dtype))
        else:
            parts.append(F.gumbel_softmax(x, tau=tau))
    return torch.cat(parts, 1)


def condition_loss(raw: Tensor, cond: Tensor, discrete_spans) -> Tensor:
    """Cross-entropy of the generator's one-hot for the conditioned column with the asked
    category, per row, counted only on the column each row was conditioned on."""
    losses, at = [], 0
    for s in discrete_spans:
        want = cond[:, at : at + s.size]
        logits = raw[:, s.start : s.start + s.size]
        asked = want.sum(1)  # 1 where this column was the condition
        ce = F.cross_entropy(logits, want.argmax(1), reduction="none")
        losses.append(ce * asked)
        at += s.size
    return torch.stack(losses, 1).sum(1).mean() if losses else raw.new_zeros(())
