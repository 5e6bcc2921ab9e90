"""Published experiments re-run end to end: train, measure, and set our numbers beside the
paper's. Each reproduction is registered by the name the command line uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ganforge.registry import Registry
from ganforge.reproduce import goodfellow2014


@dataclass(frozen=True)
class Reproduction:
    # run(out, data_dir=, samples=, device=, download=, progress=, [steps=]) -> a result
    # whose summary() is what the command prints
    run: Callable[..., Any]
    description: str


REPRODUCTIONS: Registry[Reproduction] = Registry("reproduction")
REPRODUCTIONS.register("goodfellow2014")(
    Reproduction(
        goodfellow2014.reproduce,
        "Goodfellow et al. (2014): the MLP GAN on MNIST, Table 1 (Parzen) and Figure 2",
    )
)

__all__ = ["REPRODUCTIONS", "Reproduction"]
