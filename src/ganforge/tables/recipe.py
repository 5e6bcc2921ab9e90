"""The tabular GAN recipe (CTGAN, Xu et al. 2019, our implementation) and its private
variant, on the one engine.

"D main": a batch of conditions by training-by-sampling, real rows holding them and
generated rows asked for them; the critic (PacGAN-packed) learns the Wasserstein loss with
a gradient penalty (weight ``gp``) on packed interpolates. "G main": fresh conditions and
noise; the generator descends on minus the critic's score plus the cross-entropy of the
conditioned column with the asked category.

Private (``--private``): the critic learns by DP-SGD (Opacus) on Poisson-sampled records,
one record per critic input (``pac=1``), with the non-saturating loss (per-record terms;
a gradient penalty needs second derivatives Opacus does not give), no conditional vector
(its categories would be drawn by the data's frequencies) and stops when the budget is
spent, as the image recipe does (same accountant, ``privacy.json``, datasheet figures).
The encoding (categories, value ranges, mixture modes) is read from the data without
noise: the guarantee covers what the networks learn, not the column schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganforge.config import option
from ganforge.data.table_encoding import ConditionSampler, TableEncoder
from ganforge.errors import GanforgeError
from ganforge.nets.tabular import TableCritic, TableGenerator, activate, condition_loss
from ganforge.train.engine import Phase, Players, Recipe
from ganforge.train.optim import build_optimizer


@dataclass
class TableConfig:
    """The tabular recipe's settings (``config.yaml`` of a table run)."""

    data: str | None = option(None, "the CSV file to learn", flag="--data", metavar="FILE.csv")
    column_kinds: str = option(
        "", "override inferred column kinds: NAME=KIND,NAME=KIND (continuous, integer, "
        "categorical, boolean, datetime)", metavar="SPEC", default_text="inferred",
    )  # fmt: skip
    epochs: float = option(100.0, "passes over the rows", metavar="E", resumable=True)
    batch_size: int = option(500, "rows per batch (a multiple of --pac)", metavar="B")
    pac: int = option(10, "rows the critic judges together (PacGAN)", metavar="P")
    z_dim: int = option(128, "noise size", metavar="D")
    width: int = option(256, "units per hidden layer (two in each network)", metavar="W")
    lr: float = option(2e-4, "Adam learning rate of both networks", metavar="LR")
    gp: float = option(10.0, "gradient penalty weight", metavar="LAMBDA")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto, cpu, cuda, mps", resumable=True)
    log_every: int = option(50, "log statistics every N steps", metavar="N", resumable=True)
    checkpoint_every: int = option(500, "checkpoint every N steps", metavar="N", resumable=True)
    private: bool = option(False, "train the critic with DP-SGD (Opacus) to a budget",
                           flag="--private")  # fmt: skip
    epsilon: float = option(10.0, "the privacy budget's epsilon", metavar="EPS")
    delta: float = option(1e-5, "the privacy budget's delta (below 1/rows)", metavar="DELTA")
    clip: float = option(1.0, "per-record gradient clipping norm", metavar="C")
    accountant: str = option("rdp", "privacy accountant", choices=("rdp", "prv"))

    def validate(self) -> None:
        for name in ("batch_size", "pac", "z_dim", "width", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise GanforgeError(f"--{name.replace('_', '-')} must be at least 1")
        if not (math.isfinite(self.epochs) and 0 < self.epochs <= 1e6):
            raise GanforgeError(f"--epochs must be in (0, 1e6], got {self.epochs}")
        for name in ("lr", "clip", "epsilon"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 1e6):
                raise GanforgeError(f"--{name} must be a positive number, got {value}")
        if not (math.isfinite(self.gp) and 0 <= self.gp <= 1e6):
            raise GanforgeError(f"--gp must be in [0, 1e6], got {self.gp}")
        if not self.private and self.batch_size % self.pac:
            raise GanforgeError(
                f"--batch-size {self.batch_size} is not a multiple of --pac {self.pac}"
            )
        if self.width > 8192 or self.z_dim > 8192:
            raise GanforgeError("--width and --z-dim are at most 8192")

    def kinds(self) -> dict[str, str]:
        out = {}
        for part in filter(None, (p.strip() for p in self.column_kinds.split(","))):
            name, sep, kind = part.rpartition("=")
            if not sep or not name:
                raise GanforgeError(f"--column-kinds takes NAME=KIND pairs, got {part!r}")
            out[name.strip()] = kind.strip()
        return out


class TableGANRecipe(Recipe):
    """Players ``generator`` and ``critic``; phases "D main" and "G main"."""

    kind = "table"
    title = "tabular GAN"
    distributed = False

    def __init__(
        self, cfg: TableConfig, encoder: TableEncoder, rows: Tensor, codes, device
    ) -> None:
        self.cfg, self.encoder = cfg, encoder
        self.rows = rows.to(device)
        self.conditions = ConditionSampler(encoder, codes, device)
        cond_dim = 0 if self.unconditional else encoder.cond_dim
        widths = (cfg.width, cfg.width)
        g = TableGenerator(cfg.z_dim, cond_dim, encoder.dim, widths).to(device)
        d = TableCritic(encoder.dim, cond_dim, widths, self.pac).to(device)
        self.players = Players(device)
        hyper = dict(lr=cfg.lr, beta1=0.5, beta2=0.9, weight_decay=1e-6)
        self.players.add("generator", g, build_optimizer("adam", g.parameters(), device, **hyper))
        self.players.add("critic", d, build_optimizer("adam", d.parameters(), device, **hyper))
        self.batch = cfg.batch_size
        self.images_per_step = cfg.batch_size

    @property
    def pac(self) -> int:
        return self.cfg.pac

    @property
    def unconditional(self) -> bool:
        return self.conditions.empty

    @property
    def g(self) -> torch.nn.Module:
        return self.players["generator"]

    @property
    def d(self) -> torch.nn.Module:
        return self.players["critic"]

    def phases(self) -> list[Phase]:
        return [Phase("D main", self.d_main), Phase("G main", self.g_main)]

    def _draw(self, n: int) -> tuple[Tensor | None, Tensor]:
        """Conditions and real rows holding them (unconditional: random real rows)."""
        if self.unconditional:
            return None, torch.randint(len(self.rows), (n,), device=self.rows.device)
        cond, _, _, row = self.conditions.sample(n)
        return cond, row

    def fake(self, n: int, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        z = torch.randn(n, self.cfg.z_dim, device=self.rows.device)
        raw = self.g(z, cond)
        return raw, activate(raw, self.encoder.spans)

    def d_main(self, step: int) -> dict[str, Tensor]:
        self.d.requires_grad_(True)
        cond, row = self._draw(self.batch)
        real = self.rows[row]
        with torch.no_grad():
            _, fake = self.fake(self.batch, cond)
        real_score, fake_score = self.d(real, cond), self.d(fake, cond)
        loss = fake_score.mean() - real_score.mean()
        penalty = self._penalty(real, fake, cond) if self.cfg.gp > 0 else loss.new_zeros(())
        self.players.step("critic", loss + self.cfg.gp * penalty)
        return {"loss_d": loss.detach(), "gp": penalty.detach(),
                "critic_real": real_score.detach().mean()}  # fmt: skip

    def _penalty(self, real: Tensor, fake: Tensor, cond: Tensor | None) -> Tensor:
        """(||grad|| - 1)^2 at interpolates, one mixing weight and one norm per packed group."""
        groups = len(real) // self.pac
        t = torch.rand(groups, 1, 1, device=real.device).expand(groups, self.pac, 1)
        mixed = torch.lerp(fake, real, t.reshape(len(real), 1)).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.d(mixed, cond).sum(), mixed, create_graph=True)
        return (grad.reshape(groups, -1).norm(dim=1) - 1).pow(2).mean()

    def g_main(self, step: int) -> dict[str, Tensor]:
        self.d.requires_grad_(False)
        cond, _ = self._draw(self.batch)
        raw, fake = self.fake(self.batch, cond)
        adversarial = -self.d(fake, cond).mean()
        matched = (
            condition_loss(raw, cond, self.encoder.discrete) if cond is not None
            else raw.new_zeros(())
        )  # fmt: skip
        self.players.step("generator", adversarial + matched)
        return {"loss_g": adversarial.detach(), "cond_ce": matched.detach()}

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        shown = {"loss_d": "D", "loss_g": "G", "cond_ce": "CE", "epsilon": "eps"}
        return {short: f"{stats[k]:.3f}" for k, short in shown.items() if k in stats}


class PrivateTableRecipe(TableGANRecipe):
    """The critic by DP-SGD on Poisson-sampled records; the generator is post-processing."""

    title = "private tabular GAN"

    def __init__(self, cfg, encoder, rows, codes, device, total_steps: int) -> None:
        from ganforge.losses import build_loss
        from ganforge.privacy.accountant import noise_multiplier
        from ganforge.privacy.recipe import check_records, dp_sgd

        self.records = len(rows)
        check_records(cfg.batch_size, self.records, cfg.delta, "rows")
        super().__init__(cfg, encoder, rows, codes, device)  # unconditional: see the property
        self.sample_rate = cfg.batch_size / self.records
        self.planned = total_steps
        self.sigma = noise_multiplier(
            cfg.epsilon, cfg.delta, self.sample_rate, self.planned, cfg.accountant
        )
        self.d_steps = 0
        self.loss = build_loss("nonsaturating")  # per-row terms, as DP-SGD clips per row
        self.private_d, self.dp_optimizer = dp_sgd(
            self.d, self.players.optimizers["critic"], self.sigma, cfg.clip, cfg.batch_size
        )
        self.players.optimizers["critic"] = self.dp_optimizer

    @property
    def pac(self) -> int:
        return 1  # one record per critic input: its gradient is that record's alone

    @property
    def unconditional(self) -> bool:
        return True

    def d_main(self, step: int) -> dict[str, Tensor]:
        from ganforge.privacy.recipe import poisson_rows

        self.d.requires_grad_(True)
        real = self.rows[poisson_rows(self.records, self.sample_rate, self.rows.device)]
        with torch.no_grad():
            _, fake = self.fake(self.batch, None)
        logits = self.private_d(torch.cat([real, fake]))
        real_rows, fake_rows = self.loss.d_rows(logits[: len(real)], logits[len(real) :])
        loss = torch.cat([real_rows, fake_rows]).mean()
        self.players.step("critic", loss)
        self.d_steps += 1
        return {"loss_d": real_rows.detach().mean() + fake_rows.detach().mean()}

    def g_main(self, step: int) -> dict[str, Tensor]:
        self.private_d.disable_hooks()
        try:
            self.d.requires_grad_(False)
            _, fake = self.fake(self.batch, None)
            loss = self.loss.g_value(None, self.d(fake))
            self.players.step("generator", loss)
            return {"loss_g": loss.detach()}
        finally:
            self.private_d.enable_hooks()

    def finished(self) -> bool:
        return self.d_steps >= self.planned

    def epsilon(self) -> float:
        from ganforge.privacy.accountant import epsilon_spent

        c = self.cfg
        return epsilon_spent(self.sigma, self.sample_rate, self.d_steps, c.delta, c.accountant)

    def window_stats(self) -> dict[str, float]:
        return {"epsilon": self.epsilon()}

    def privacy(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "mechanism": "DP-SGD on the critic (Opacus), Poisson sampling of rows; the "
            "generator is post-processing; the column encoding is read from the data "
            "without noise",
            "epsilon_target": c.epsilon, "delta": c.delta, "accountant": c.accountant,
            "noise_multiplier": self.sigma, "clip": c.clip, "sample_rate": self.sample_rate,
            "records": self.records, "critic_steps_planned": self.planned,
            "critic_steps_done": self.d_steps, "epsilon_spent": self.epsilon(),
        }  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "d_steps": self.d_steps, "planned": self.planned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state.get("planned", -1)) != self.planned:
            raise GanforgeError(
                "this private run was planned for another number of steps; continuing it "
                "longer would spend more than its privacy budget"
            )
        self.sigma = self.dp_optimizer.noise_multiplier = float(state["sigma"])
        self.d_steps = int(state["d_steps"])
