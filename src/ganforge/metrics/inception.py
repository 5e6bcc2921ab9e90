"""Inception-v3 features for FID/KID/IS, from the weights file that pytorch-fid and
torch-fidelity use (``pt_inception-2015-12-05-6726825d.pth``, a port of the TensorFlow
graph of Heusel et al.). ganforge never downloads it: pass its path.

The ported graph differs from torchvision's Inception-v3 in its pooling: average pools skip
the zero padding (TensorFlow's default) and the last block pools by maximum. The classes
below make only those changes; names match, so the file loads as a plain state dict.

Input: float32 NCHW in [-1, 1], any size, 1 or 3 channels (gray is repeated); images are
resized to 299x299. ``features``: (N, 2048) pool features; ``forward``: (N, 1008) class logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


def _avg(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _blocks():
    from torchvision.models import inception

    class BlockA(inception.InceptionA):
        def _forward(self, x: Tensor) -> list[Tensor]:
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [self.branch1x1(x), b5, b3, self.branch_pool(_avg(x))]

    class BlockC(inception.InceptionC):
        def _forward(self, x: Tensor) -> list[Tensor]:
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            d = self.branch7x7dbl_1(x)
            for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
                d = layer(d)
            return [self.branch1x1(x), b7, self.branch7x7dbl_5(d), self.branch_pool(_avg(x))]

    class BlockE(inception.InceptionE):
        def __init__(self, in_channels: int, max_pool: bool) -> None:
            super().__init__(in_channels)
            self.max_pool = max_pool

        def _forward(self, x: Tensor) -> list[Tensor]:
            a = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(a), self.branch3x3_2b(a)], 1)
            d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
            pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg(x)
            return [self.branch1x1(x), b3, bd, self.branch_pool(pooled)]

    return BlockA, BlockC, BlockE


class FIDInception(nn.Module):
    """Inception-v3 with the FID graph's pooling; ``features`` gives the 2048-d pool output."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import inception_v3

        block_a, block_c, block_e = _blocks()
        net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
        net.Mixed_5b = block_a(192, pool_features=32)
        net.Mixed_5c = block_a(256, pool_features=64)
        net.Mixed_5d = block_a(288, pool_features=64)
        net.Mixed_6b = block_c(768, channels_7x7=128)
        net.Mixed_6c = block_c(768, channels_7x7=160)
        net.Mixed_6d = block_c(768, channels_7x7=160)
        net.Mixed_6e = block_c(768, channels_7x7=192)
        net.Mixed_7b = block_e(1280, max_pool=False)
        net.Mixed_7c = block_e(2048, max_pool=True)
        self.net = net

    def features(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        n = self.net
        for layer in (
            n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
            n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a,
            n.Mixed_6b, n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c,
        ):  # fmt: skip
            x = layer(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    @property
    def head(self) -> nn.Module:
        """Pool features -> 1008 class logits (so :func:`metrics.evaluate.embed` serves both)."""
        return self.net.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def load_inception(path: str | Path | None) -> FIDInception:
    """The FID Inception network with weights from ``path`` (the pytorch-fid file)."""
    if not path:
        raise GanforgeError(
            f"Inception features need the weights file {WEIGHTS_NAME} (as used by pytorch-fid "
            "and torch-fidelity); pass its path with --inception"
        )
    path = Path(path)
    if not path.is_file():
        raise GanforgeError(f"Inception weights {path} do not exist (expected {WEIGHTS_NAME})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        raise GanforgeError(f"{path} is not a readable Inception weights file") from None
    model = FIDInception()
    try:
        model.net.load_state_dict(state)
    except RuntimeError:
        raise GanforgeError(f"{path} does not hold FID Inception-v3 weights") from None
    return model.eval().requires_grad_(False)
