"""Choosing the labelled subset: the same number of images from every class, by seed."""

from __future__ import annotations

import torch
from torch import Tensor

from ganforge.errors import GanforgeError


def balanced_subset(labels: Tensor, count: int, seed: int) -> Tensor:
    """Indices of ``count`` images, ``count / K`` from each of the K classes in ``labels``,
    drawn at random by ``seed``; sorted, so the same seed always gives the same subset."""
    classes = torch.unique(labels)
    k = len(classes)
    if count < k or count % k:
        raise GanforgeError(
            f"the labelled count must be a multiple of the {k} classes (one or more per "
            f"class), got {count}"
        )
    per_class = count // k
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        members = torch.nonzero(labels == c).squeeze(1)
        if len(members) < per_class:
            raise GanforgeError(
                f"class {int(c)} has only {len(members)} images; {per_class} were asked for"
            )
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(chosen).sort().values
