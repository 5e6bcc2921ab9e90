"""scikit-learn's bundled 8x8 digits (1,797 images): a dataset that needs no files."""

from __future__ import annotations

import numpy as np
import torch

from ganforge.data.images import ImageSet


def load_digits() -> ImageSet:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # Pixel values are 0..16; stretch to the full byte range.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return ImageSet(
        torch.from_numpy(images).unsqueeze(1),
        torch.from_numpy(bunch.target.astype(np.int64)),
        class_names=[str(i) for i in range(10)],
        name="digits",
    )
