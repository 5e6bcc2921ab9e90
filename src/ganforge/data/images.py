"""An image set held in memory as one uint8 tensor, batched by indexing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ganforge.nets.spec import DataSpec


@dataclass
class ImageSet:
    """``images``: uint8 (N, C, H, W) in [0, 255]; ``labels``: int64 (N,) or None.

    Kept as uint8 (4x smaller than float) and normalised per batch on the fly.
    """

    images: Tensor
    labels: Tensor | None = None
    class_names: list[str] = field(default_factory=list)
    name: str = ""
    paths: list[str] = field(default_factory=list)  # image files, when read from a folder

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("images must be a uint8 tensor of shape (N, C, H, W)")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    def spec(self) -> DataSpec:
        _, c, h, w = self.images.shape
        return DataSpec(channels=c, image_size=h, num_classes=self.num_classes)

    def to(self, device: torch.device | str) -> ImageSet:
        labels = None if self.labels is None else self.labels.to(device)
        return ImageSet(self.images.to(device), labels, self.class_names, self.name, self.paths)

    def subset(self, count: int) -> ImageSet:
        labels = None if self.labels is None else self.labels[:count]
        paths = self.paths[:count]
        return ImageSet(self.images[:count], labels, self.class_names, self.name, paths)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """Images at ``index`` as float32 NCHW in [-1, 1], and their labels."""
        labels = None if self.labels is None else self.labels[index]
        return to_float(self.images[index]), labels


def to_float(images: Tensor) -> Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.float().mul_(2.0 / 255.0).sub_(1.0)


def to_pil(hwc: Tensor | np.ndarray) -> Image.Image:
    """One uint8 HWC image (1, 3 or 4 channels) as a PIL image: gray ("L") for one."""
    array = hwc.numpy() if isinstance(hwc, Tensor) else hwc
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def png_bytes(hwc: Tensor | np.ndarray, scale: int = 1) -> bytes:
    """One uint8 HWC image as PNG file bytes, ``scale`` times larger (nearest)."""
    import io

    image = to_pil(hwc)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_uint8(images: Tensor) -> Tensor:
    """float [-1, 1] NCHW -> uint8 [0, 255] NHWC (the file boundary), on the CPU."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu()
