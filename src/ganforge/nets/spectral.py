"""Spectral normalization (Miyato et al., 2018): each layer's weight divided by its largest
singular value (one power iteration per forward pass), keeping the critic near 1-Lipschitz."""

from __future__ import annotations

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalize every convolution and linear layer of ``module`` in place."""
    for child in list(module.modules()):
        if isinstance(child, LAYERS):
            spectral_norm(child)
    return module
