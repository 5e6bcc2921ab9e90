"""The GAN recipe: a generator and a discriminator, k "D main" steps then one "G main" step,
with gradient penalties in the D step or in their own lazy "D <name>" phases.

Read as a game (pytorch/examples' dcgan is the bar for clarity): the discriminator's phase
draws a real batch and a generated one and descends on the loss; the generator's phase
reuses the last generated batch (its graph kept) and descends through the frozen critic.
Networks, loss, penalties and augmentation are all chosen by name in the config.

On several processes each one plays its share of the global batch (its rows of the data
permutation and of the noise), so the game is the one a single process plays.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch import Tensor

from ganforge.config import RunConfig
from ganforge.data import ImageSet
from ganforge.data.clusters import cluster_images
from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError
from ganforge.losses import REGULARIZERS, DiffAugment, Regularizer, Terms, build_loss
from ganforge.nets import NETWORKS, DataSpec, build_networks, check_training_memory
from ganforge.nets.spectral import apply_spectral_norm
from ganforge.train import dist
from ganforge.train.device import channels_last
from ganforge.train.engine import Phase, Players, Recipe
from ganforge.train.optim import build_optimizer


def build_regularizers(cfg: RunConfig) -> list[Regularizer]:
    """The penalties the config switches on (a weight above 0), with their intervals."""
    loss = cfg.loss
    return [
        REGULARIZERS.get(name)(getattr(loss, name), getattr(loss, f"{name}_every"))
        for name in ("r1", "r2", "gp")
        if getattr(loss, name) > 0
    ]


class GANRecipe(Recipe):
    """Players ``generator`` (with its weight average, used for sampling) and
    ``discriminator``; phases "D main", "G main" and one per lazy penalty."""

    kind = "gan"
    distributed = True

    def __init__(
        self,
        cfg: RunConfig,
        data: ImageSet,
        device: torch.device,
        amp: torch.dtype | None,
        fresh: bool = True,
    ) -> None:
        self.cfg = cfg
        m, t = cfg.model, cfg.train
        self.clusters = m.clusters or 0
        if self.clusters:
            data = self._clustered(data, fresh)
        self.spec: DataSpec = data.spec
        self.class_names = list(data.class_names)
        try:
            self.sampler = EpochSampler(
                len(data), t.batch_size, t.seed, device, dist.rank(), dist.world_size()
            )
        except ValueError as err:
            raise GanforgeError(str(err)) from None
        check_training_memory(m.network, self.spec, m.z_dim, m.width, t.batch_size, len(data))
        g, d = build_networks(m.network, self.spec, m.z_dim, m.width, self.clusters)
        if self.clusters and fresh:  # a resumed run's shares come with its weights
            shares = torch.bincount(data.labels, minlength=self.clusters) / len(data)
            g.label_shares.copy_(shares)
        if m.spectral_norm:
            apply_spectral_norm(d)
        family = NETWORKS.get(m.network)
        if fresh and family.init_from_data is not None:
            family.init_from_data(g, data.images.float().mean(0) / 127.5 - 1)
        self.data = data.to(device)
        g, d = g.to(device), d.to(device)
        if channels_last(d):
            channels_last(g)
            self.data.images = self.data.images.contiguous(memory_format=torch.channels_last)
        self.conditional = g.num_classes > 0
        o = cfg.optim
        hyper = dict(
            lr=o.lr, beta1=o.beta1, beta2=o.beta2, momentum=o.momentum,
            weight_decay=o.weight_decay,
        )  # fmt: skip
        self.players = Players(device, amp)
        self.players.add(
            "generator",
            g,
            build_optimizer(o.optimizer, g.parameters(), device, **hyper),
            o.schedule,
            ema_decay=t.ema_decay,
        )
        self.players.add(
            "discriminator",
            d,
            build_optimizer(o.optimizer, d.parameters(), device, **hyper),
            o.schedule,
        )
        self.loss = build_loss(cfg.loss.name)
        self.regularizers = build_regularizers(cfg)
        self.augment = DiffAugment(cfg.loss.augment)
        self.k = t.k  # discriminator steps per generator step
        self.latent = dist.SharedRandom(t.seed, device)
        self.best_fid = math.inf
        self._batch: tuple[Tensor, Tensor, Tensor | None] | None = None

    def _clustered(self, data: ImageSet, fresh: bool) -> ImageSet:
        """``data`` labelled by its k-means clusters (its own labels are never read). A
        resumed run takes the clusters from its checkpoint (:meth:`load_state_dict`)."""
        if self.clusters > len(data):
            raise GanforgeError(
                f"{self.clusters} clusters need at least as many images, and the data has "
                f"{len(data)}; pass a smaller --clusters, or --clusters 0 for none"
            )
        if fresh:
            labels = cluster_images(data.images, self.clusters, seed=self.cfg.train.seed)
            dist.broadcast_(labels)  # one clustering for every process
        else:
            labels = torch.zeros(len(data), dtype=torch.long)
        names = [f"cluster {i}" for i in range(self.clusters)]
        return ImageSet(data.images, labels, names, data.name, data.paths)

    @property
    def images_per_step(self) -> int:
        """Real images the discriminator reads per generator step (the global batch)."""
        return self.cfg.train.batch_size * self.k

    @property
    def g(self) -> torch.nn.Module:
        return self.players["generator"]

    @property
    def d(self) -> torch.nn.Module:
        return self.players["discriminator"]

    @property
    def ema(self) -> torch.nn.Module:
        """The averaged generator, the one sampled from."""
        return self.players.emas["generator"].model

    def critic(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """The discriminator as every loss and penalty sees it (augmented when asked), when
        only the generator learns from it."""
        return self.d(self.augment(x) if self.augment else x, labels)

    def trained_critic(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """The same, in the phases that train the discriminator."""
        d = self.players.trainable("discriminator")
        return d(self.augment(x) if self.augment else x, labels)

    def noise(self, n: int) -> Tensor:
        """This process's ``n`` rows of the global batch's noise."""
        return self.latent.randn(n, self.cfg.model.z_dim)

    # -- the phases -------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        lazy = [r for r in self.regularizers if r.every > 1]
        return [
            Phase("D main", self.d_main),
            Phase("G main", self.g_main),
            *(Phase(f"D {r.name}", partial(self.d_penalty, r), r.every) for r in lazy),
        ]

    def d_main(self, step: int) -> dict[str, Tensor]:
        k, bs, p = self.k, self.sampler.share, self.players
        g = p.trainable("generator")
        self.d.requires_grad_(True)
        for i in range(k):
            real, labels = self.data.batch(self.sampler.next())
            labels = labels if self.conditional else None
            with p.autocast(), torch.set_grad_enabled(i == k - 1):
                # The last generated batch keeps its graph for the generator's phase.
                fake = g(self.noise(bs), labels)
            with p.autocast():
                terms = self.loss.discriminator(self.trained_critic, real, fake.detach(), labels)
            loss, stats = terms.loss, terms.stats
            for reg in self.regularizers:
                if reg.every == 1:  # outside autocast, in float32: they differentiate twice
                    extra = reg(self.trained_critic, real, fake, labels)
                    loss, stats = loss + extra.loss, {**stats, **extra.stats}
            p.step("discriminator", loss)
        self._batch = (real, fake, labels)
        return stats

    def g_main(self, step: int) -> dict[str, Tensor]:
        assert self._batch is not None  # "D main" runs first in every step
        real, fake, labels = self._batch
        self.d.requires_grad_(False)  # no weight gradients for D in G's phase
        with self.players.autocast():
            terms: Terms = self.loss.generator(self.critic, real, fake, labels)
        self.players.step("generator", terms.loss)
        self._batch = (real, fake.detach(), labels)  # frees G's graph; penalties reuse it
        return terms.stats

    def d_penalty(self, reg: Regularizer, step: int) -> dict[str, Tensor]:
        assert self._batch is not None
        self.d.requires_grad_(True)
        terms = reg(self.trained_critic, *self._batch)
        self.players.step("discriminator", terms.loss)
        return terms.stats

    # -- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "sampler": self.sampler.state_dict(),
            "best_fid": self.best_fid,
            "data_spec": vars(self.spec).copy(),
            "class_names": self.class_names,
            "latent": self.latent.state_dict(),
        }
        if self.clusters:
            state["clusters"] = self.data.labels.to("cpu", torch.int16)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if DataSpec(**state["data_spec"]) != self.spec:
            raise GanforgeError(
                f"the checkpoint was trained on data shaped {state['data_spec']}, "
                f"but this dataset is {vars(self.spec)}"
            )
        if self.clusters:
            clusters = state.get("clusters")
            valid = isinstance(clusters, Tensor) and clusters.shape == (len(self.data),)
            if not valid or not 0 <= int(clusters.min()) <= int(clusters.max()) < self.clusters:
                raise GanforgeError("the checkpoint's clusters do not match this dataset")
            self.data.labels = clusters.to(self.data.images.device, torch.long)
        self.sampler.load_state_dict(state["sampler"])
        if "latent" in state:  # older checkpoints drew noise from the global stream
            self.latent.load_state_dict(state["latent"])
        self.best_fid = float(state.get("best_fid", math.inf))

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        shown = {"images_per_s": "img_s", "loss_d": "D", "loss_g": "G", "d_real": "Dx",
                 "d_fake": "DGz", "critic_real": "Cx", "critic_fake": "CGz"}  # fmt: skip
        return {
            short: f"{stats[key]:.0f}" if key == "images_per_s" else f"{stats[key]:.3f}"
            for key, short in shown.items()
            if key in stats
        }
