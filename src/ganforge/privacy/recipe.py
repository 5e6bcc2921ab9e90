"""The private GAN recipe: the discriminator trained with DP-SGD, the generator by
post-processing (it only ever sees the discriminator's outputs).

Each discriminator step draws a Poisson sample of the data (every record in with probability
``q = batch / n``), puts it and a fixed number of generated images through one forward pass
(Opacus keeps one per-image gradient per row), clips every row's gradient to norm C, adds
Gaussian noise of standard deviation sigma * C to the sum and steps Adam (Abadi et al., 2016).
Generated rows carry labels drawn uniformly, never a real record's, so each record touches
exactly one row. sigma is planned before training from (epsilon, delta, q, the run's
discriminator steps); training stops when those steps are spent.

Bie et al. (2023) found the discriminator needs many steps per generator step under DP-SGD
(``--k 50`` at epsilon 10); ``--adaptive ACC`` raises ``k`` along a ladder when the
discriminator's moving accuracy on generated images (free of privacy cost: no data) falls
to ACC, as their adaptive schedule does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from ganforge.config import RunConfig, to_dict
from ganforge.data import ImageSet
from ganforge.errors import GanforgeError
from ganforge.privacy.accountant import check_delta, epsilon_spent, noise_multiplier
from ganforge.train.engine import Phase
from ganforge.train.gan import GANRecipe

LADDER = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
GRACE = 200  # generator steps between two raises of k
SMOOTHING = 0.99  # of the moving accuracy on generated images


def check_per_image(module: torch.nn.Module, network: str) -> None:
    """DP-SGD needs each image's gradient on its own: layers that mix a batch (batch norm)
    cannot give it, and Opacus' gradient hooks refuse in-place activations."""
    from opacus.validators import ModuleValidator

    problems = [
        f"batch norm ({type(m).__name__})"
        for m in module.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    problems += [
        f"in-place {type(m).__name__}" for m in module.modules() if getattr(m, "inplace", False)
    ]
    if not problems:  # anything else Opacus cannot compute per-image gradients for
        problems = [first_words(e) for e in ModuleValidator.validate(module, strict=False)]
    if problems:
        raise GanforgeError(
            f"network {network!r} has layers DP-SGD cannot train in its discriminator "
            f"({problems[0]}): pass --network dcgan-cond-dp"
        )


def privacy_report(settings: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """The guarantee of a private run from its privacy settings (the config section) and
    its recipe's privacy state: what ``privacy.json`` and a datasheet record."""
    spent = epsilon_spent(
        saved["sigma"], saved["sample_rate"], int(saved["d_steps"]), settings["delta"],
        settings["accountant"],
    )  # fmt: skip
    return {
        "mechanism": "DP-SGD on the discriminator (Opacus), Poisson sampling; the generator "
        "is post-processing",
        "epsilon_target": settings["epsilon"],
        "delta": settings["delta"],
        "accountant": settings["accountant"],
        "noise_multiplier": saved["sigma"],
        "clip": settings["clip"],
        "sample_rate": saved["sample_rate"],
        "records": saved["records"],
        "expected_batch": round(saved["sample_rate"] * saved["records"]),
        "discriminator_steps_planned": saved["planned"],
        "discriminator_steps_done": saved["d_steps"],
        "epsilon_spent": spent,
        "k": saved["k"],
        "adaptive": settings["adaptive"],
    }


def checkpoint_privacy(state: dict[str, Any]) -> dict[str, Any] | None:
    """:func:`privacy_report` of a GAN checkpoint; None when it was not trained privately."""
    settings = state["config"].get("privacy") or {}
    saved = state["recipe"].get("privacy")
    if not settings.get("enabled") or not isinstance(saved, dict):
        return None
    return privacy_report(settings, saved)


def check_records(batch: int, records: int, delta: float, unit: str = "training records") -> None:
    """A private run's data must be larger than its expected batch, and delta below 1/n."""
    check_delta(delta, records)
    if batch > records:
        raise GanforgeError(
            f"--batch-size {batch} is larger than the {records:,} {unit}; a private run "
            "samples each record with probability batch / n"
        )


def dp_sgd(critic: torch.nn.Module, optimizer, sigma: float, clip: float, batch: int):
    """``(GradSampleModule, DPOptimizer)`` for a critic that sees, per step, a Poisson batch
    of real rows (``batch`` in expectation) and ``batch`` generated ones, its loss the mean
    of per-row terms (Abadi et al., 2016, through Opacus)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    private = GradSampleModule(critic, loss_reduction="mean")
    # Opacus' hooks fire on the critic's outputs, as the inputs need no gradient.
    warnings.filterwarnings("ignore", message="Full backward hook is firing")
    optimizer = DPOptimizer(
        optimizer, noise_multiplier=sigma, max_grad_norm=clip,
        expected_batch_size=2 * batch, loss_reduction="mean",
    )  # fmt: skip
    return private, optimizer


def poisson_rows(records: int, rate: float, device) -> Tensor:
    """The indices of a Poisson sample: every record in with probability ``rate``,
    independently (the sampling DP-SGD's accounting assumes); the count varies."""
    return (torch.rand(records, device=device) < rate).nonzero().squeeze(1)


def first_words(err: BaseException) -> str:
    return str(err).splitlines()[0][:120]


class PrivateGANRecipe(GANRecipe):
    """The GAN recipe with a differentially private discriminator step."""

    title = "private GAN"
    distributed = False  # Opacus' per-image gradients, on one process

    def __init__(
        self,
        cfg: RunConfig,
        data: ImageSet,
        device: torch.device,
        amp: torch.dtype | None,
        fresh: bool = True,
        total_steps: int = 1,
    ) -> None:
        p, t = cfg.privacy, cfg.train
        self.records = len(data)
        check_records(t.batch_size, self.records, p.delta)
        super().__init__(cfg, data, device, amp, fresh)
        check_per_image(self.d, cfg.model.network)
        self.sample_rate = t.batch_size / self.records
        # The budget is spent over this many discriminator steps, however k changes.
        self.planned = total_steps * t.k
        # A resumed run takes its sigma from the checkpoint (load_state_dict).
        self.sigma = (
            noise_multiplier(p.epsilon, p.delta, self.sample_rate, self.planned, p.accountant)
            if fresh
            else math.nan
        )
        self.d_steps = 0
        self.fake_accuracy = 0.5  # moving, on generated images
        self.k_raised_at = 0
        self.private_d, self.dp_optimizer = dp_sgd(
            self.d, self.players.optimizers["discriminator"], self.sigma, p.clip, t.batch_size
        )
        self.players.optimizers["discriminator"] = self.dp_optimizer

    # -- the phases -------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        return [Phase("D main", self.d_main), Phase("G main", self.g_main)]

    def poisson_batch(self) -> tuple[Tensor, Tensor]:
        """A Poisson sample of the data (:func:`poisson_rows`)."""
        dev = self.data.images.device
        return self.data.batch(poisson_rows(self.records, self.sample_rate, dev))

    def d_loss(
        self, real: Tensor, labels: Tensor, fake: Tensor, fake_labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The discriminator's loss over one forward pass of real and generated rows: the
        mean of per-row terms, which Opacus turns into one gradient per row."""
        x = torch.cat([real, fake])
        x = self.augment(x) if self.augment else x
        logits = self.private_d(x, torch.cat([labels, fake_labels]))
        real_logits, fake_logits = logits[: len(real)], logits[len(real) :]
        real_rows, fake_rows = self.loss.d_rows(real_logits, fake_logits)
        loss = torch.cat([real_rows, fake_rows]).mean()
        stats = {
            "loss_d": real_rows.detach().mean() + fake_rows.detach().mean(),
            **self.loss.output_stats(real_logits, fake_logits),
            "fake_accuracy": (fake_logits.detach() < 0).float().mean(),
        }
        return loss, stats

    def d_main(self, step: int) -> dict[str, Tensor]:
        bs, p = self.cfg.train.batch_size, self.players
        g = p.trainable("generator")
        self.d.requires_grad_(True)
        k = min(self.k, self.planned - self.d_steps)
        for i in range(k):
            real, labels = self.poisson_batch()
            fake_labels = torch.randint(g.num_classes, (bs,), device=real.device)
            with p.autocast(), torch.set_grad_enabled(i == k - 1):
                fake = g(self.noise(bs), fake_labels)  # the last one trains the generator
            with p.autocast():
                loss, stats = self.d_loss(real, labels, fake.detach(), fake_labels)
            p.step("discriminator", loss)
            self.d_steps += 1
        self._batch = (real, fake, fake_labels)
        self._adapt(stats["fake_accuracy"], step)
        return stats

    def g_main(self, step: int) -> dict[str, Tensor]:
        # The generator's gradient passes through the discriminator, whose per-image hooks
        # are for its own steps only.
        self.private_d.disable_hooks()
        try:
            return super().g_main(step)
        finally:
            self.private_d.enable_hooks()

    def _adapt(self, accuracy: Tensor, step: int) -> None:
        """Bie et al.'s adaptive schedule: after a grace period, a moving accuracy on
        generated images at or below the threshold moves k one rung up the ladder."""
        threshold = self.cfg.privacy.adaptive
        if threshold is None:
            return
        self.fake_accuracy = SMOOTHING * self.fake_accuracy + (1 - SMOOTHING) * float(accuracy)
        if step - self.k_raised_at >= GRACE and self.fake_accuracy <= threshold:
            higher = [r for r in LADDER if r > self.k]
            if higher:
                self.k, self.k_raised_at = higher[0], step

    def finished(self) -> bool:
        return self.d_steps >= self.planned

    def epsilon(self) -> float:
        """The epsilon spent so far."""
        p = self.cfg.privacy
        return epsilon_spent(self.sigma, self.sample_rate, self.d_steps, p.delta, p.accountant)

    def window_stats(self) -> dict[str, float]:
        return {"epsilon": self.epsilon(), "k": float(self.k), "d_steps": float(self.d_steps)}

    def report(self) -> dict[str, Any]:
        """What the run folder records of its privacy (``privacy.json``)."""
        return privacy_report(to_dict(self.cfg.privacy), self._privacy_state())

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        shown = super().postfix(stats)
        if "epsilon" in stats:
            shown["eps"] = f"{stats['epsilon']:.2f}"
        if self.cfg.privacy.adaptive is not None:
            shown["k"] = str(self.k)
        return shown

    # -- state ------------------------------------------------------------------------------
    def _privacy_state(self) -> dict[str, Any]:
        return {
            "sigma": self.sigma,
            "sample_rate": self.sample_rate,
            "records": self.records,
            "planned": self.planned,
            "d_steps": self.d_steps,
            "k": self.k,
            "fake_accuracy": self.fake_accuracy,
            "k_raised_at": self.k_raised_at,
        }

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "privacy": self._privacy_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        saved = state.get("privacy")
        if not isinstance(saved, dict):
            raise GanforgeError("the checkpoint is not of a private run; it cannot go on privately")
        if int(saved["planned"]) != self.planned:
            raise GanforgeError(
                f"this private run was planned for {saved['planned']:,} discriminator steps; "
                "continuing it longer would spend more than its privacy budget"
            )
        self.sigma = self.dp_optimizer.noise_multiplier = float(saved["sigma"])
        self.d_steps, self.k = int(saved["d_steps"]), int(saved["k"])
        self.fake_accuracy = float(saved["fake_accuracy"])
        self.k_raised_at = int(saved["k_raised_at"])
