"""Directions in the latent space to walk along (used by the explorer).

- Class directions: the mean latent of the samples the reference MNIST network reads as a
  class, minus the mean latent of all samples.
- SeFa (Shen & Zhou, 2021): the eigenvectors of W^T W for the generator's first linear
  map W (its columns for z), largest eigenvalue first: the latent moves that change the
  first layer's output most, found in closed form from the weights alone.

Every direction is a unit vector (z_dim,).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganforge.errors import GanforgeError
from ganforge.inside.concepts import reads_as
from ganforge.sampling import LoadedGenerator, noise


def sefa_directions(gen: LoadedGenerator, k: int = 5) -> dict[str, Tensor]:
    """The first ``k`` SeFa directions, named ``sefa 1`` .. ``sefa k``."""
    first = next(
        (m for m in gen.generator.modules() if isinstance(m, nn.Linear)
         and m.in_features >= gen.z_dim),
        None,
    )  # fmt: skip
    if first is None:
        raise GanforgeError(f"the {gen.network} generator has no linear first layer for SeFa")
    w = first.weight.detach().float().cpu()[:, : gen.z_dim]
    values, vectors = torch.linalg.eigh(w.T @ w)
    order = values.argsort(descending=True)[: max(0, k)]
    return {f"sefa {i + 1}": vectors[:, j] / vectors[:, j].norm() for i, j in enumerate(order)}


def class_directions(gen: LoadedGenerator, n: int = 2000, seed: int = 0) -> dict[str, Tensor]:
    """``class c`` directions for the classes the reference network reads in ``n`` samples;
    empty when the images are not 1 x 28 x 28 digits, and for a class-conditional generator
    (its class input already chooses the class)."""
    if gen.class_conditional:
        return {}
    z = noise(n, gen.z_dim, seed)
    labels = gen.labels(n, None, seed)
    with torch.no_grad():
        images = gen(z, labels)
    classes = reads_as(images)
    if classes is None:
        return {}
    mean = z.mean(0)
    out = {}
    for c in range(10):
        chosen = classes == c
        if chosen.sum() >= 5:  # too few samples give a noisy mean
            d = z[chosen].mean(0) - mean
            out[f"class {c}"] = d / d.norm().clamp_min(1e-8)
    return out


def walk(z: Tensor, directions: dict[str, Tensor], amounts: dict[str, float]) -> Tensor:
    """``z`` (N, z_dim) moved by ``amounts[name]`` along each named direction."""
    out = z.clone()
    for name, amount in amounts.items():
        if name not in directions:
            known = ", ".join(directions)
            raise GanforgeError(f"there is no direction {name!r} (there are: {known})")
        out = out + float(amount) * directions[name].to(out)
    return out
