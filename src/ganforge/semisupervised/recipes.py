"""The semi-supervised game and its labels-only baseline as recipes for the one engine.

Images are vectors in [0, 1] on the training device. Both recipes use the paper's Adam
(:func:`paper_adam`) and its schedule: the rate constant for the first half of the run,
then linearly down to zero. The classifier's weight average is what predicts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError
from ganforge.semisupervised.losses import classifier_loss, feature_matching
from ganforge.semisupervised.nets import Classifier, GaussianNoise, Generator
from ganforge.train import dist
from ganforge.train.engine import Phase, Players, Recipe
from ganforge.train.optim import build_optimizer

SCHEDULE = "linear-second-half"


def paper_adam(net: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """Adam as the paper's code has it: beta1 0.5 and 1e-8 added *inside* the square root,
    which is PyTorch's eps = 1e-4 outside it. The larger eps damps steps of parameters whose
    gradients are tiny; with PyTorch's default 1e-8 the generator's output layer saturates
    after 3-6 epochs on MNIST and the game breaks (feature matching jumps from 2 to 30-90)."""
    device = next(net.parameters()).device
    return build_optimizer("adam", net.parameters(), device, lr=lr, beta1=0.5, eps=1e-4)


def tile(x: Tensor, y: Tensor | None, batch_size: int) -> tuple[Tensor, Tensor | None]:
    """Repeat a set smaller than a batch (a few labels) until it fills one, as the paper
    repeats its labelled images to the length of the unlabelled ones."""
    if len(x) >= batch_size:
        return x, y
    reps = -(-batch_size // len(x))
    return x.repeat(reps, 1), None if y is None else y.repeat(reps)


def start_classifier(net: Classifier, init_batch: Tensor, seed: int) -> dist.SharedRandom:
    """Start ``net`` from up to 500 images of ``init_batch`` (one recipe for both, so the
    baseline is the same classifier the GAN trains); from then on its noise layers draw
    from the returned stream, the one every process shares."""
    device = init_batch.device
    net.data_init(init_batch[torch.randperm(len(init_batch), device=device)[:500]])
    random = dist.SharedRandom(seed, device)
    for m in net.modules():
        if isinstance(m, GaussianNoise):
            m.source = random
    return random


def sampler(size: int, batch_size: int, seed: int, device: torch.device) -> EpochSampler:
    """This process's share of each global batch of ``batch_size``."""
    try:
        return EpochSampler(size, batch_size, seed, device, dist.rank(), dist.world_size())
    except ValueError as err:
        raise GanforgeError(str(err)) from None


class SupervisedRecipe(Recipe):
    """One player, ``classifier`` (averaged), and one phase: cross-entropy on labels."""

    kind = "supervised"
    distributed = True

    def __init__(
        self, net: Classifier, x: Tensor, target: Tensor, batch_size: int, lr: float,
        ema_decay: float, seed: int,
    ) -> None:  # fmt: skip
        device = x.device
        self.random = start_classifier(net, x, seed)
        self.players = Players(device)
        self.players.add("classifier", net, paper_adam(net, lr), SCHEDULE, ema_decay)
        self.x, self.target = tile(x, target, batch_size)
        self.batches = sampler(len(self.x), batch_size, seed, device)

    def phases(self) -> list[Phase]:
        return [Phase("C main", self.c_main)]

    def c_main(self, step: int) -> dict[str, Tensor]:
        i = self.batches.next()
        logits = self.players.trainable("classifier")(self.x[i])[0]
        loss = F.cross_entropy(logits, self.target[i])
        self.players.step("classifier", loss)
        return {"cross_entropy": loss.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.batches.state_dict(), "shared": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["sampler"])
        if "shared" in state:  # older checkpoints drew from torch's stream
            self.random.load_state_dict(state["shared"])


class SemiSupervisedRecipe(Recipe):
    """Salimans et al. (2016): players ``classifier`` (K logits that are also the
    discriminator, averaged) and ``generator`` (feature matching). Phase "D main" steps the
    classifier on labelled, unlabelled and generated images in one batch; "G main" matches
    the mean features that step saw on the unlabelled batch."""

    kind = "semisupervised-gan"
    distributed = True

    def __init__(
        self, d: Classifier, g: Generator, xl: Tensor, target: Tensor, xu: Tensor,
        batch_size: int, lr: float, unsupervised_weight: float, ema_decay: float, seed: int,
    ) -> None:  # fmt: skip
        device = xl.device
        self.random = start_classifier(d, xu, seed)
        self.players = Players(device)
        self.players.add("classifier", d, paper_adam(d, lr), SCHEDULE, ema_decay)
        self.players.add("generator", g, paper_adam(g, lr), SCHEDULE)
        self.bs, self.weight = batch_size, unsupervised_weight
        self.xl, self.target = tile(xl, target, batch_size)
        self.xu = tile(xu, None, batch_size)[0]
        self.labelled = sampler(len(self.xl), batch_size, seed, device)
        self.unlabelled = sampler(len(self.xu), batch_size, seed + 1, device)
        self.history: list[dict[str, float]] = []
        self._fake: Tensor | None = None
        self._real_features: Tensor | None = None

    def phases(self) -> list[Phase]:
        return [Phase("D main", self.d_main), Phase("G main", self.g_main)]

    def d_main(self, step: int) -> dict[str, Tensor]:
        p, bs = self.players, self.labelled.share
        d, g = p.trainable("classifier"), p.trainable("generator")
        il, iu = self.labelled.next(), self.unlabelled.next()
        fake = g(self.random.rand(bs, p["generator"].z_dim))
        p["classifier"].requires_grad_(True)
        with self.random.segments(3):  # noise for the global labelled, unlabelled, fake
            logits, features = d(torch.cat([self.xl[il], self.xu[iu], fake.detach()]))
        terms = classifier_loss(
            logits[:bs], self.target[il], logits[bs : 2 * bs], logits[2 * bs :], self.weight
        )
        self.players.step("classifier", terms.loss)
        self._fake, self._real_features = fake, features[bs : 2 * bs].detach()
        with torch.no_grad():
            error = (logits[:bs].argmax(1) != self.target[il]).float().mean()
        return {
            "supervised": terms.supervised.detach(),
            "unsupervised": terms.unsupervised.detach(),
            "labelled_error": error,
        }

    def g_main(self, step: int) -> dict[str, Tensor]:
        # The paper's code runs a fresh real batch through the updated classifier; reusing
        # the classifier step's features saves that pass (28.5 -> 25.5 ms an update on 2
        # CPU threads) and gave no worse errors (benchmarks/README.md).
        assert self._fake is not None and self._real_features is not None
        d = self.players["classifier"]
        d.requires_grad_(False)
        loss = feature_matching(self._real_features, d(self._fake)[1], dist.batch_mean)
        self.players.step("generator", loss)
        self._fake = None
        return {"feature_matching": loss.detach()}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        return {"sup": f"{stats['supervised']:.3f}", "fm": f"{stats['feature_matching']:.3f}"}

    def state_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled.state_dict(),
            "unlabelled": self.unlabelled.state_dict(),
            "history": self.history,
            "shared": self.random.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labelled.load_state_dict(state["labelled"])
        self.unlabelled.load_state_dict(state["unlabelled"])
        self.history = list(state["history"])
        if "shared" in state:
            self.random.load_state_dict(state["shared"])
