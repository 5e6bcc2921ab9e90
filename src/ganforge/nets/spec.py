"""What a network family needs to know about the data and how it is built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn


@dataclass(frozen=True)
class DataSpec:
    """Shape of the images a model is built for: ``channels`` x ``image_size`` x ``image_size``."""

    channels: int
    image_size: int
    num_classes: int = 0


@dataclass(frozen=True)
class NetworkFamily:
    """A registered pair of networks and the training defaults the family was designed with.

    ``build(spec, z_dim, width, num_classes)`` returns ``(generator, discriminator)``; a
    ``num_classes`` of 0 means unconditional. ``init_from_data(generator, mean_image)``, if
    set, adjusts a new generator to the data before training; ``mean_image`` is the training
    set's mean, float CHW in [-1, 1]. ``recipe`` holds the family's own defaults for the
    config's ``loss``, ``optim`` and ``train`` sections (``{"loss": {"name": "hinge"}}``),
    used where the user gave no value.
    """

    build: Callable[[DataSpec, int, int, int], tuple[nn.Module, nn.Module]]
    conditional: bool
    z_dim: int
    width: int
    optim: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    init_from_data: Callable[[nn.Module, Tensor], None] | None = None
    recipe: dict[str, dict[str, Any]] = field(default_factory=dict)
