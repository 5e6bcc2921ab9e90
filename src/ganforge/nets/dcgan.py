"""DCGAN (Radford et al., 2015): strided (transposed) convolutions, batch norm, no pooling.

The depth follows the resolution: a ``base`` x ``base`` feature map (base 4..7) is doubled
until it reaches ``image_size`` (28 = 7*4, 32 = 4*8, 64 = 4*16 ...).
The conditional generator takes a one-hot label beside ``z`` (Mirza & Osindero, 2014);
the conditional discriminator adds a projection term <embed(y), features> (Miyato & Koyama, 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError


def layout(image_size: int) -> tuple[int, int]:
    """Return ``(base, doublings)`` with ``base * 2**doublings == image_size`` and base >= 4."""
    base, doublings = image_size, 0
    while base % 2 == 0 and base // 2 >= 4:
        base //= 2
        doublings += 1
    if doublings == 0:
        raise GanforgeError(
            f"dcgan needs an image size that is a power-of-two multiple of 4..7 "
            f"(8, 28, 32, 64 ...), got {image_size}"
        )
    return base, doublings


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: N(0, 0.02) weights, batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def projection_logit(
    h: Tensor, head: nn.Linear, embed: nn.Embedding | None, y: Tensor | None
) -> Tensor:
    """A critic's logit from its features ``h`` (N, F): ``head(h)``, plus the projection
    term <embed(y), h> when conditional (Miyato & Koyama, 2018)."""
    logit = head(h).squeeze(1)
    if embed is not None:
        logit = logit + (embed(y) * h).sum(dim=1)
    return logit


class DCGANGenerator(nn.Module):
    """Maps ``z`` (N, z_dim) [and labels (N,)] to images (N, C, S, S) in [-1, 1]."""

    def __init__(
        self, z_dim: int, channels: int, image_size: int, width: int = 32, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.z_dim, self.num_classes = z_dim, num_classes
        base, n = layout(image_size)
        top = width * 2 ** (n - 1)
        self.base, self.top = base, top
        self.project = nn.Sequential(
            nn.Linear(z_dim + num_classes, top * base * base, bias=False),
            nn.Unflatten(1, (top, base, base)),
            nn.BatchNorm2d(top),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        ch = top
        for _ in range(n - 1):
            blocks += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ch // 2),
                nn.ReLU(inplace=True),
            ]
            ch //= 2
        blocks += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        init_weights(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.body(self.project(z))

    def layers(self) -> list[tuple[str, nn.Module]]:
        """The modules whose outputs are the successive feature maps (``ganforge inside``)."""
        relus = [m for m in self.body if isinstance(m, nn.ReLU)]
        return [("project", self.project)] + [(f"up{i + 1}", m) for i, m in enumerate(relus)]


class DCGANDiscriminator(nn.Module):
    """Maps images (N, C, S, S) [and labels (N,)] to one logit per image, shape (N,).
    ``per_image=True`` leaves batch norm out, so that every image's logit depends on that
    image alone, and in-place activations, which Opacus' gradient hooks refuse
    (differentially private training needs per-image gradients)."""

    def __init__(
        self,
        channels: int,
        image_size: int,
        width: int = 32,
        num_classes: int = 0,
        per_image: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        base, n = layout(image_size)
        inplace = not per_image
        layers: list[nn.Module] = [
            nn.Conv2d(channels, width, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace),
        ]
        ch = width
        for _ in range(n - 1):
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=per_image),
                *([] if per_image else [nn.BatchNorm2d(ch * 2)]),
                nn.LeakyReLU(0.2, inplace),
            ]
            ch *= 2
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        feat = ch * base * base
        self.head = nn.Linear(feat, 1)
        self.embed = nn.Embedding(num_classes, feat) if num_classes else None
        init_weights(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return projection_logit(self.features(x), self.head, self.embed, y)


def build(spec, z_dim: int, width: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    g = DCGANGenerator(z_dim, spec.channels, spec.image_size, width, num_classes)
    d = DCGANDiscriminator(spec.channels, spec.image_size, width, num_classes)
    return g, d


def build_private(spec, z_dim: int, width: int, num_classes: int) -> tuple[nn.Module, nn.Module]:
    """The same generator; a discriminator without batch norm, for DP-SGD."""
    g = DCGANGenerator(z_dim, spec.channels, spec.image_size, width, num_classes)
    d = DCGANDiscriminator(spec.channels, spec.image_size, width, num_classes, per_image=True)
    return g, d
