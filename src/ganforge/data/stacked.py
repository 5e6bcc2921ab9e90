"""Stacked MNIST (Metz et al., 2017; the mode-collapse benchmark of VEEGAN, PacGAN and
R3GAN): three MNIST digits drawn independently, one per colour channel, so 1000 modes.

The label of a stacked image is its three digits read as a number, ``100 * red + 10 * green
+ blue`` (0..999). The set is built from the MNIST training images with a fixed seed, so the
same files always give the same dataset (a resumed run sees the same images).
"""

from __future__ import annotations

import torch

from ganforge.data.images import ImageSet
from ganforge.errors import GanforgeError

MODES = 1000
DEFAULT_SIZE = 128_000  # images drawn (2.4 GB as float, 301 MB as the uint8 we keep)


def stack_digits(digits: ImageSet, count: int = DEFAULT_SIZE, seed: int = 0) -> ImageSet:
    """``count`` stacked images of three digits of ``digits`` (a labelled 1-channel set),
    each channel an independent uniform draw: uint8 (count, 3, H, W), labels 0..999."""
    if digits.labels is None or digits.images.shape[1] != 1:
        raise GanforgeError("Stacked MNIST is built from labelled one-channel digit images")
    if count < 1:
        raise GanforgeError(f"a stacked set needs at least one image, got {count}")
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(len(digits), (count, 3), generator=g)
    images = digits.images[index.flatten(), 0].view(count, 3, *digits.images.shape[2:])
    parts = digits.labels[index]
    labels = parts[:, 0] * 100 + parts[:, 1] * 10 + parts[:, 2]
    names = [f"{i:03d}" for i in range(MODES)]
    return ImageSet(images.contiguous(), labels, names, f"stacked-{digits.name}")
