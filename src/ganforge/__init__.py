"""ganforge: generative adversarial networks from one command.

Tensor conventions at module boundaries:
- images between data and networks: ``float32`` NCHW in [-1, 1];
- images at the file boundary (PNG, .npz): ``uint8`` NHWC in [0, 255].

``ganforge.load(path)`` returns the right object for any run folder or saved file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load(path: str | Path, device: str = "cpu") -> Any:
    """A GAN run's generator, a semi-supervised run's classifier or a robust run's model,
    from its run folder or file (see :mod:`ganforge.loading`)."""
    from ganforge.loading import load as _load

    return _load(path, device)
