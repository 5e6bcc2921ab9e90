"""Two-dimensional mixtures of Gaussians, the mode-collapse benchmarks of Unrolled GAN,
VEEGAN and PacGAN, with PacGAN's settings (Lin et al., 2018):

- ``ring``: 8 equal Gaussians evenly spaced on the unit circle, standard deviation 0.01;
- ``grid``: 25 equal Gaussians at {-4, -2, 0, 2, 4}^2, standard deviation 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Mixture:
    """An equal-weight mixture of isotropic Gaussians at ``centres`` (K, 2)."""

    name: str
    centres: Tensor
    std: float

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points (n, 2), float32."""
        pick = torch.randint(len(self.centres), (n,), generator=generator)
        noise = torch.randn(n, self.centres.shape[1], generator=generator)
        return self.centres[pick] + self.std * noise


def ring(modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture:
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    centres = torch.stack([angles.cos(), angles.sin()], dim=1) * radius
    return Mixture("ring", centres.float(), std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    axis = (torch.arange(side) - (side - 1) / 2) * spacing
    centres = torch.cartesian_prod(axis, axis)
    return Mixture("grid", centres.float(), std)


MIXTURES: dict[str, Mixture] = {"ring": ring(), "grid": grid()}
