"""The players of the fairness game: a predictor (or an encoder with a classifier head) and
an adversary that tries to recover the sensitive attribute from what the predictor gives.

Inputs: feature vectors ``float32 (N, D)`` (an encoded table) or images ``float32 NCHW``
in [-1, 1]; the body is an MLP or a small convolutional net accordingly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def body(input_shape: tuple[int, ...], width: int, out: int) -> nn.Module:
    """Two hidden layers of ``width`` units for vectors; two stride-2 convolutions and one
    hidden layer for images (C, H, W)."""
    if len(input_shape) == 1:
        return nn.Sequential(
            nn.Linear(input_shape[0], width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, out),
        )
    c, h, w = input_shape
    flat = 64 * ((h + 3) // 4) * ((w + 3) // 4)
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(flat, width),
        nn.ReLU(),
        nn.Linear(width, out),
    )


def adversary_features(logit: Tensor, y: Tensor | None) -> Tensor:
    """What the adversary sees of a binary prediction: its probability at three sharpnesses
    (bounded inputs keep the adversary stable; the sharp one resolves the decision
    boundary, as Zhang et al.'s learned sharpening does), and for equalized odds the label
    and its products with them, so the adversary models P(A | prediction, label)."""
    s = torch.stack([torch.sigmoid(logit), torch.sigmoid(4 * logit), torch.sigmoid(logit / 4)], 1)
    if y is None:
        return s
    y = y.float().unsqueeze(1)
    return torch.cat([s, y, s * y], 1)


class Adversary(nn.Module):
    """Logits over the sensitive groups from a representation (or prediction features);
    ``hidden=0`` is a linear adversary."""

    def __init__(self, d_in: int, groups: int, hidden: int = 32) -> None:
        super().__init__()
        out = 1 if groups == 2 else groups
        self.net = (
            nn.Linear(d_in, out)
            if hidden == 0
            else nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, out))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def group_loss(logits: Tensor, a: Tensor, weight: Tensor) -> Tensor:
    """The adversary's cross-entropy (binary: one logit; more groups: softmax), each row
    weighted by ``weight`` (a weighted mean)."""
    if logits.shape[1] == 1:
        each = nn.functional.binary_cross_entropy_with_logits(
            logits.squeeze(1), a.float(), reduction="none"
        )
    else:
        each = nn.functional.cross_entropy(logits, a, reduction="none")
    return (each * weight).sum() / weight.sum()


def balancing_weights(a: Tensor, groups: int, y: Tensor | None) -> Tensor:
    """Per-row weights that make every group equally likely (within each label, when ``y``
    is given): the adversary then gains only from what the model's output tells it, not
    from the groups' sizes, and small groups (women with high incomes) count as much as
    large ones."""
    cell = a if y is None else y * groups + a
    cells = groups * (1 if y is None else 2)
    counts = torch.bincount(cell, minlength=cells).float()
    per_label = counts.reshape(-1, groups).sum(1, keepdim=True).expand(-1, groups).reshape(-1)
    present = (counts.reshape(-1, groups) > 0).sum(1, keepdim=True).expand(-1, groups)
    w = per_label / (counts.clamp(min=1) * present.reshape(-1).float())
    return w[cell]
