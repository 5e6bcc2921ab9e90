"""The semi-supervised players of Salimans et al. (2016) for MNIST, sized from the input.

Both work on images flattened to vectors in [0, 1]: the classifier (the discriminator) maps
(N, D) to K class logits; the generator maps noise (N, z_dim) to (N, D) in [0, 1].
Weight normalization (Salimans & Kingma, 2016) with a data-dependent first-batch start is
what the paper's networks use; it lets Adam run at a rate of 3e-3.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASSIFIER_UNITS = (1000, 500, 250, 250, 250)
GENERATOR_UNITS = (500, 500)


class WNLinear(nn.Module):
    """``y = (g / ||v||) * (x v^T) + b``: a linear layer with weight normalization.

    :meth:`data_init` sets ``g`` and ``b`` so that a batch's outputs start with zero mean and
    unit variance per unit, which is why no other initial scale needs tuning.
    """

    def __init__(self, d_in: int, d_out: int, train_scale: bool = True) -> None:
        super().__init__()
        # The norm of v sets the effective step size of its direction under Adam; 0.1 is the
        # paper's code's (0.05 let the classifier separate fakes within 100 updates).
        self.v = nn.Parameter(torch.randn(d_out, d_in) * 0.1)
        # A fixed scale (set once by data_init) keeps hidden features from growing without
        # bound; the paper's classifier trains the scale of its output layer only.
        if train_scale:
            self.g = nn.Parameter(torch.ones(d_out))
        else:
            self.register_buffer("g", torch.ones(d_out))
        self.b = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: Tensor) -> Tensor:
        scale = self.g / self.v.norm(dim=1).clamp_min(1e-12)
        return F.linear(x, self.v) * scale + self.b

    @torch.no_grad()
    def data_init(self, x: Tensor, init_scale: float = 1.0) -> Tensor:
        """Start ``g``, ``b`` from ``x``'s statistics; return this layer's output on ``x``."""
        if len(x) < 2:
            raise ValueError("data_init needs a batch of at least 2 inputs")
        t = F.linear(x, self.v) / self.v.norm(dim=1)
        mean, std = t.mean(0), t.std(0).clamp_min(1e-6)
        self.g.copy_(init_scale / std)
        self.b.copy_(-mean * init_scale / std)
        return self(x)


class GaussianNoise(nn.Module):
    """Adds N(0, sigma^2) noise in training mode; the identity in eval mode. The noise comes
    from ``source`` when one is set (a recipe's stream shared by every process, so the
    global batch gets the noise one process would draw), else from torch's."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma
        self.source: Any = None

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        noise = torch.randn_like(x) if self.source is None else self.source.randn_like(x)
        return x + self.sigma * noise


class Classifier(nn.Module):
    """Input noise (sigma 0.3), then weight-normalized ReLU layers of 1000-500-250-250-250
    with noise (sigma 0.5) after each, then K logits. ``features`` is the last hidden layer,
    the one the generator's feature matching uses."""

    def __init__(
        self,
        d_in: int,
        num_classes: int,
        units: tuple[int, ...] = CLASSIFIER_UNITS,
        input_noise: float = 0.3,
        hidden_noise: float = 0.5,
    ) -> None:
        super().__init__()
        self.d_in, self.num_classes, self.units = d_in, num_classes, tuple(units)
        self.input_noise = GaussianNoise(input_noise)
        dims = (d_in, *units)
        self.hidden = nn.ModuleList(
            WNLinear(a, b, train_scale=False) for a, b in zip(dims, dims[1:], strict=False)
        )
        self.noise = nn.ModuleList(GaussianNoise(hidden_noise) for _ in units)
        self.out = WNLinear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (N, D) in [0, 1] -> (logits (N, K), features (N, units[-1]))."""
        h = self.input_noise(x)
        feats = h
        for layer, noise in zip(self.hidden, self.noise, strict=True):
            feats = F.relu(layer(h))
            h = noise(feats)
        return self.out(h), feats

    @torch.no_grad()
    def data_init(self, x: Tensor) -> None:
        """Start every layer from a batch ``x`` of real images, with the noise on (as in
        training), so the noise is part of each unit's unit variance."""
        h = self.input_noise(x)
        for layer, noise in zip(self.hidden, self.noise, strict=True):
            h = noise(F.relu(layer.data_init(h)))
        self.out.data_init(h)


class SoftplusBN(nn.Module):
    """Linear -> batch norm with a shift but no scale (as the paper's) -> softplus."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out, bias=False)
        self.norm = nn.BatchNorm1d(d_out, affine=False)
        self.shift = nn.Parameter(torch.zeros(d_out))

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(self.norm(self.linear(x)) + self.shift)


class Generator(nn.Module):
    """Uniform noise (N, z_dim) -> two 500-unit softplus layers with batch norm -> (N, D)
    sigmoid outputs through a weight-normalized layer."""

    def __init__(self, d_out: int, z_dim: int = 100, units: tuple[int, ...] = GENERATOR_UNITS):
        super().__init__()
        self.d_out, self.z_dim, self.units = d_out, z_dim, tuple(units)
        dims = (z_dim, *units)
        self.body = nn.Sequential(*(SoftplusBN(a, b) for a, b in zip(dims, dims[1:], strict=False)))
        # Glorot-uniform hidden weights; the weight-normalized output starts at scale 1,
        # bias 0 (no data-dependent start: there is no data for the generator's output).
        for m in self.body.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        self.out = WNLinear(dims[-1], d_out)

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.out(self.body(z)))

    def noise(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        return torch.rand(n, self.z_dim, device=device)
