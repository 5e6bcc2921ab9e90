"""The fairness game on the one engine (Zhang, Lemoine & Mitchell 2018; Edwards & Storkey
2016; LAFTR, Madras et al. 2018).

Each step has two phases on one batch:

- "A main": the adversary takes ``adversary_steps`` Adam steps at recovering the sensitive
  group from what the model gives (detached): the prediction (demographic parity), the
  prediction and the label (equalized odds), or the representation.
- "P main" (classifier) / "E main" (representation): the model descends on its task loss
  with the adversary's gain removed: Zhang et al.'s update
  ``g_task - proj_{g_adv} g_task - alpha * g_adv``, where ``g_adv`` is the gradient of the
  adversary's loss (which the model raises). The projection stops the task step from
  helping the adversary; without it the game settled at gaps 3-10x larger on Adult.

For the first ``warmup`` steps the model learns its task alone (the adversary learns to
read it meanwhile). The model's weights are averaged (EMA); the averaged model is the one
that predicts, since the last iterate of a min-max game circles its equilibrium.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ganforge.fairness.nets import (
    Adversary,
    adversary_features,
    balancing_weights,
    body,
    group_loss,
)
from ganforge.train.engine import Phase, Players, Recipe
from ganforge.train.optim import build_optimizer

CONSTRAINTS = ("demographic_parity", "equalized_odds")


def projected_step(
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    task: Tensor,
    adversary: Tensor,
    alpha: float,
) -> None:
    """Step ``optimizer`` along ``g_task - proj_{g_adv}(g_task) - alpha * g_adv``."""
    g_task = torch.autograd.grad(task, params, retain_graph=True)
    # The classifier head of a representation does not reach the adversary: no gradient.
    raw = torch.autograd.grad(adversary, params, allow_unused=True)
    g_adv = [torch.zeros_like(p) if g is None else g for p, g in zip(params, raw, strict=True)]
    flat_t = torch.cat([g.reshape(-1) for g in g_task])
    flat_a = torch.cat([g.reshape(-1) for g in g_adv])
    unit = flat_a / (flat_a.norm() + 1e-12)
    update = flat_t - (flat_t @ unit) * unit - alpha * flat_a
    offset = 0
    for p in params:
        p.grad = update[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    optimizer.step()


class _Batches:
    """Shuffled mini-batches, a new permutation each epoch (its state is checkpointed)."""

    def __init__(self, n: int, batch: int, device: torch.device) -> None:
        self.n, self.batch, self.device = n, min(batch, n), device
        self.order = torch.randperm(n, device=device)
        self.position = 0

    def next(self) -> Tensor:
        if self.position + self.batch > self.n:
            self.order = torch.randperm(self.n, device=self.device)
            self.position = 0
        idx = self.order[self.position : self.position + self.batch]
        self.position += self.batch
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order.cpu(), "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order = state["order"].to(self.device)
        self.position = int(state["position"])


class FairGameRecipe(Recipe):
    """Shared: data on the device, batches, the adversary and its phase."""

    distributed = False

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        a: Tensor,
        groups: int,
        *,
        constraint: str,
        alpha: float,
        batch_size: int,
        warmup: int,
        adversary_steps: int,
        adversary_width: int,
        lr: float,
        adversary_lr: float,
        device: torch.device,
    ) -> None:
        self.x, self.y, self.a = x.to(device), y.to(device), a.to(device)
        self.groups, self.constraint, self.alpha = groups, constraint, alpha
        self.warmup, self.adversary_steps = warmup, adversary_steps
        self.lr, self.adversary_lr = lr, adversary_lr
        self.adversary_width = adversary_width
        labels = self.y if constraint == "equalized_odds" else None
        self.weight = balancing_weights(self.a, groups, labels)
        self.batches = _Batches(len(self.x), batch_size, device)
        self.images_per_step = self.batches.batch
        self.players = Players(device)
        self.idx: Tensor | None = None

    # What a subclass names: its trained model (a player) and its phase.
    model_name = "model"
    phase_name = "M main"

    def _add_players(self, net: nn.Module, ema_decay: float, adversary_in: int) -> None:
        device = self.players.device
        net = net.to(device)
        opt = build_optimizer("adam", net.parameters(), device, lr=self.lr)
        self.players.add(self.model_name, net, opt, schedule="linear", ema_decay=ema_decay)
        adv = Adversary(adversary_in, self.groups, self.adversary_width).to(device)
        opt = build_optimizer("adam", adv.parameters(), device, lr=self.adversary_lr)
        self.players.add("adversary", adv, opt, schedule="linear")

    def task(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The model's output the adversary reads, and its label logit."""
        raise NotImplementedError

    def seen(self, out: Tensor, y: Tensor) -> Tensor:
        """What the adversary is given of the model's output ``out`` for labels ``y``."""
        raise NotImplementedError

    def output(self, x: Tensor) -> Tensor:
        return self.task(x)[0]

    def phases(self) -> list[Phase]:
        return [Phase("A main", self.a_main), Phase(self.phase_name, self.m_main)]

    def a_main(self, step: int) -> dict[str, Tensor]:
        self.idx = self.batches.next()
        x, y, a, w = self.x[self.idx], self.y[self.idx], self.a[self.idx], self.weight[self.idx]
        with torch.no_grad():
            seen = self.seen(self.output(x), y)
        adv = self.players["adversary"]
        for _ in range(self.adversary_steps):
            loss = group_loss(adv(seen), a, w)
            self.players.step("adversary", loss)
        return {"loss_adv": loss.detach()}

    def m_main(self, step: int) -> dict[str, Tensor]:
        x, y, a, w = self.x[self.idx], self.y[self.idx], self.a[self.idx], self.weight[self.idx]
        out, logit = self.task(x)
        task = nn.functional.binary_cross_entropy_with_logits(logit, y.float())
        if step < self.warmup or self.alpha == 0:
            self.players.step(self.model_name, task)
            return {"loss_task": task.detach()}
        adv = self.players["adversary"].requires_grad_(False)
        gain = group_loss(adv(self.seen(out, y)), a, w)
        adv.requires_grad_(True)
        params = [p for p in self.players[self.model_name].parameters() if p.requires_grad]
        projected_step(self.players.optimizers[self.model_name], params, task, gain, self.alpha)
        return {"loss_task": task.detach()}

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state["batches"])

    def postfix(self, stats: dict[str, float]) -> dict[str, str]:
        shown = {"loss_task": "task", "loss_adv": "adv"}
        return {short: f"{stats[k]:.3f}" for k, short in shown.items() if k in stats}


class FairClassifierRecipe(FairGameRecipe):
    """Players ``predictor`` (one logit: binary labels) and ``adversary``; phases
    "A main" and "P main"."""

    kind = "fair-classifier"
    title = "adversarially debiased classifier"
    model_name, phase_name = "predictor", "P main"

    def __init__(
        self, x: Tensor, y: Tensor, a: Tensor, groups: int, *, width: int, ema_decay: float,
        **game: Any,
    ) -> None:  # fmt: skip
        super().__init__(x, y, a, groups, **game)
        net = body(tuple(self.x.shape[1:]), width, 1)
        self._add_players(net, ema_decay, 3 if self.constraint == "demographic_parity" else 7)

    def task(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logit = self.players["predictor"](x).squeeze(1)
        return logit, logit

    def seen(self, out: Tensor, y: Tensor) -> Tensor:
        return adversary_features(out, y if self.constraint == "equalized_odds" else None)


class Representation(nn.Module):
    """An encoder to ``dim`` numbers and a linear classifier head on them."""

    def __init__(self, input_shape: tuple[int, ...], width: int, dim: int) -> None:
        super().__init__()
        self.encoder = body(input_shape, width, dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.encoder(x)
        return z, self.head(z).squeeze(1)


class FairRepresentationRecipe(FairGameRecipe):
    """LAFTR-style: players ``model`` (encoder and classifier head) and ``adversary`` (on
    the representation, and the label for equalized odds); phases "A main", "E main"."""

    kind = "fair-representation"
    title = "adversarially fair representation"
    model_name, phase_name = "model", "E main"

    def __init__(
        self, x: Tensor, y: Tensor, a: Tensor, groups: int, *, width: int, dim: int,
        ema_decay: float, **game: Any,
    ) -> None:  # fmt: skip
        super().__init__(x, y, a, groups, **game)
        net = Representation(tuple(self.x.shape[1:]), width, dim)
        self._add_players(net, ema_decay, dim + (1 if self.constraint == "equalized_odds" else 0))

    def task(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.players["model"](x)

    def seen(self, out: Tensor, y: Tensor) -> Tensor:
        if self.constraint == "equalized_odds":
            return torch.cat([out, y.float().unsqueeze(1)], 1)
        return out
