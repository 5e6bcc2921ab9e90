"""The GAN game on 2-D points: the mixture-of-Gaussians mode-collapse benchmarks.

The same losses, penalties and engine as the image GAN, on small MLPs (the setting of
Unrolled GAN, VEEGAN and PacGAN: a few hundred units a layer). Real points are drawn fresh
from the mixture every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganforge.data.mixtures import Mixture
from ganforge.losses import REGULARIZERS, build_loss
from ganforge.train.engine import Engine, Phase, Players, Recipe
from ganforge.train.optim import build_optimizer


def mlp(inputs: int, outputs: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Linear(width, outputs))


class PointCritic(nn.Module):
    """An MLP critic with the image critics' signature: ``(x, labels) -> logits (N,)``."""

    def __init__(self, width: int, depth: int) -> None:
        super().__init__()
        self.net = mlp(2, 1, width, depth)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(x).squeeze(1)


@dataclass
class PointsConfig:
    loss: str = "relativistic"
    r1: float = 0.1
    r2: float = 0.1
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.99)
    schedule: str = "constant"
    ema_decay: float = 0.999
    z_dim: int = 16
    width: int = 128
    depth: int = 3
    seed: int = 0


class PointsRecipe(Recipe):
    """Players ``generator`` and ``discriminator`` on 2-D points; phases "D main", "G main"."""

    kind = "points"

    def __init__(self, mixture: Mixture, cfg: PointsConfig) -> None:
        self.mixture, self.cfg = mixture, cfg
        torch.manual_seed(cfg.seed)
        self.g = mlp(cfg.z_dim, 2, cfg.width, cfg.depth)
        self.d = PointCritic(cfg.width, cfg.depth)
        device = torch.device("cpu")
        self.players = Players(device)
        hyper = {"lr": cfg.lr, "beta1": cfg.betas[0], "beta2": cfg.betas[1]}
        for name, module in (("generator", self.g), ("discriminator", self.d)):
            optimizer = build_optimizer("adam", module.parameters(), device, **hyper)
            ema = cfg.ema_decay if name == "generator" else None
            self.players.add(name, module, optimizer, cfg.schedule, ema_decay=ema)
        self.loss = build_loss(cfg.loss)
        self.penalties = [REGULARIZERS.get(n)(w) for n, w in (("r1", cfg.r1), ("r2", cfg.r2)) if w]
        self.rng = torch.Generator().manual_seed(cfg.seed + 1)
        self.images_per_step = cfg.batch_size
        self._batch: tuple[Tensor, Tensor] | None = None

    def phases(self) -> list[Phase]:
        return [Phase("D main", self.d_main), Phase("G main", self.g_main)]

    def d_main(self, step: int) -> dict[str, Tensor]:
        real = self.mixture.sample(self.cfg.batch_size, self.rng)
        fake = self.g(torch.randn(self.cfg.batch_size, self.cfg.z_dim))
        self.d.requires_grad_(True)
        terms = self.loss.discriminator(self.d, real, fake.detach(), None)
        loss, stats = terms.loss, terms.stats
        for penalty in self.penalties:
            extra = penalty(self.d, real, fake, None)
            loss, stats = loss + extra.loss, {**stats, **extra.stats}
        self.players.step("discriminator", loss)
        self._batch = (real, fake)
        return stats

    def g_main(self, step: int) -> dict[str, Tensor]:
        assert self._batch is not None
        real, fake = self._batch
        self.d.requires_grad_(False)
        terms = self.loss.generator(self.d, real, fake, None)
        self.players.step("generator", terms.loss)
        self._batch = None
        return terms.stats

    @torch.inference_mode()
    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` points from the generator's weight average."""
        z = torch.randn(n, self.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
        return self.players.emas["generator"].model(z)


def train_points(
    mixture: Mixture, cfg: PointsConfig | None = None, progress: bool = False
) -> PointsRecipe:
    """Play the game on ``mixture`` for ``cfg.steps`` steps; the trained recipe samples."""
    recipe = PointsRecipe(mixture, cfg or PointsConfig())
    Engine(recipe, recipe.cfg.steps, progress=progress, desc=mixture.name).run()
    return recipe
