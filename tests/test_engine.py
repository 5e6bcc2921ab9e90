"""The engine: phases and intervals, schedules, optimizers, statistics, exact resume, and the
GAN recipe with every loss, penalty and option."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.train import Engine, Phase, Players, Recipe, resume, train
from ganforge.train.checkpoint import load_checkpoint
from ganforge.train.engine import Callback
from ganforge.train.metrics_log import read_metrics
from ganforge.train.optim import OPTIMIZERS, SCHEDULES, build_optimizer


class Counting(Recipe):
    """A least-squares fit whose phases record the steps they ran at."""

    kind = "counting"

    def __init__(self, every: int = 3) -> None:
        torch.manual_seed(0)
        self.net = nn.Linear(2, 1)
        self.players = Players(torch.device("cpu"))
        opt = build_optimizer("sgd", self.net.parameters(), torch.device("cpu"), lr=0.1)
        self.players.add("net", self.net, opt, "linear", ema_decay=0.5)
        self.every, self.ran = every, {"main": [], "lazy": []}

    def phases(self) -> list[Phase]:
        return [Phase("main", self.main), Phase("lazy", self.lazy, self.every)]

    def main(self, step: int) -> dict[str, torch.Tensor]:
        self.ran["main"].append(step)
        x = torch.randn(8, 2)
        loss = (self.net(x).squeeze(1) - x.sum(1)).square().mean()
        self.players.step("net", loss)
        return {"loss": loss.detach()}

    def lazy(self, step: int) -> dict[str, torch.Tensor]:
        self.ran["lazy"].append(step)
        return {"lazy": torch.tensor(float(step))}


def test_phases_run_at_their_intervals_and_schedules_set_the_rate():
    recipe = Counting(every=3)
    rates = []
    engine = Engine(recipe, 7, log_every=100, progress=False, callbacks=[
        Callback(1, lambda e: rates.append(recipe.players.optimizers["net"].param_groups[0]["lr"]))
    ])  # fmt: skip
    result = engine.run()
    assert result.steps == 7 and not result.interrupted
    assert recipe.ran["main"] == list(range(7))
    assert recipe.ran["lazy"] == [0, 3, 6]
    # "linear": the rate at step s is 0.1 * (1 - s / 7), set before the step runs.
    assert rates == pytest.approx([0.1 * (1 - s / 7) for s in range(7)])
    # The statistics are means over the phases that ran in the window.
    assert result.last_stats["lazy"] == pytest.approx((0 + 3 + 6) / 3)


def _ctrl_c(engine: Engine) -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_checkpoints_and_resume_is_bitwise_exact(tmp_path: Path, same_state):
    logs_a: list = []
    a = Engine(Counting(), 10, log_every=4, progress=False, on_log=lambda s, v: logs_a.append(s))
    a.run()
    # Ctrl-C during step 6: the step finishes, a checkpoint is written, the run stops.
    first = Engine(Counting(), 10, checkpoint=tmp_path / "c.pt", log_every=4, progress=False,
                   callbacks=[Callback(6, _ctrl_c, at_end=False)])  # fmt: skip
    result = first.run()
    assert result.interrupted and result.steps == 6
    state = load_checkpoint(tmp_path / "c.pt", kind="counting")
    assert state["step"] == 6
    assert state["stats"]["window_steps"] == 2  # steps 5 and 6 are in the open window
    logs_b: list = []
    second = Engine(
        Counting(), 10, log_every=4, progress=False, on_log=lambda s, v: logs_b.append(s)
    )
    second.load_state_dict(state)
    second.run()
    same_state(a.state_dict()["players"], second.state_dict()["players"])
    same_state(a.state_dict()["ema"], second.state_dict()["ema"])
    assert logs_a == [4, 8, 10] and logs_b == [8, 10]


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path: Path):
    Engine(Counting(), 2, checkpoint=tmp_path / "c.pt", progress=False).run()
    state = load_checkpoint(tmp_path / "c.pt")
    other = Counting()
    other.kind = "other"
    with pytest.raises(GanforgeError, match="counting"):
        Engine(other, 4, progress=False).load_state_dict(state)
    with pytest.raises(GanforgeError, match="not a gan"):
        load_checkpoint(tmp_path / "c.pt", kind="gan")


@pytest.mark.parametrize(
    "name", ["constant", "linear", "cosine", "linear-second-half", "one-cycle"]
)
def test_schedules_start_and_end_where_they_should(name: str):
    f = SCHEDULES.get(name)
    values = [f(s, 100) for s in range(100)]
    assert all(0.0 <= v <= 1.0 for v in values)
    if name != "one-cycle":
        assert values[0] == 1.0
    if name in ("linear", "cosine", "linear-second-half", "one-cycle"):
        assert values[-1] < 0.05
    if name == "linear-second-half":
        assert values[49] == 1.0 and values[75] == pytest.approx(0.5)


def test_optimizer_registry_builds_each_with_its_hyper_parameters():
    device = torch.device("cpu")
    assert {"adam", "adamw", "sgd"} <= set(OPTIMIZERS.names())
    p = [nn.Parameter(torch.zeros(3))]
    adam = build_optimizer("adam", p, device, lr=1e-3, beta1=0.5, beta2=0.9, eps=1e-4)
    assert adam.param_groups[0]["betas"] == (0.5, 0.9) and adam.param_groups[0]["eps"] == 1e-4
    adamw = build_optimizer("adamw", p, device, lr=1e-3, weight_decay=0.1)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["weight_decay"] == 0.1
    sgd = build_optimizer("sgd", p, device, lr=0.1, momentum=0.5, beta1=None)
    assert sgd.param_groups[0]["momentum"] == 0.5
    with pytest.raises(GanforgeError, match="unknown optimizer 'lion'"):
        build_optimizer("lion", p, device, lr=1.0)


# -- the GAN recipe with every option ---------------------------------------------------------


@pytest.mark.parametrize(
    "loss",
    [
        {"name": "hinge"},
        {"name": "wasserstein", "gp": 10.0},
        {"name": "least-squares"},
        {"name": "relativistic", "r1": 1.0, "r2": 1.0},
        {"name": "nonsaturating", "r1": 5.0, "r1_every": 4, "augment": "translation,color"},
    ],
    ids=["hinge", "wgan-gp", "lsgan", "rpgan-r1-r2", "lazy-r1-diffaugment"],
)
def test_every_loss_and_penalty_trains_through_the_engine(tmp_path: Path, make_config, loss):
    cfg = make_config(loss=loss, train={"steps": 8, "log_every": 1})
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.steps == 8
    rows = [r for r in read_metrics(tmp_path / "run") if "loss_d" in r]
    assert len(rows) == 8 and all("loss_g" in r for r in rows)
    penalties = [k for k in ("r1", "r2", "gp") if loss.get(k)]
    for key in penalties:
        logged = [r["step"] for r in rows if key in r]
        every = loss.get(f"{key}_every", 1)
        # A lazy penalty runs at steps 0, every, 2 every ...: logged after steps 1, 5.
        assert logged == [s + 1 for s in range(8) if s % every == 0], key
    probabilistic = loss["name"] in ("minimax", "nonsaturating")
    assert ("d_real" in rows[0]) == probabilistic
    assert ("critic_real" in rows[0]) == (not probabilistic)
    assert (tmp_path / "run" / "losses.png").is_file()


def test_spectral_norm_and_a_lazy_penalty_resume_exactly(tmp_path: Path, make_config, same_state):
    options = {"model": {"spectral_norm": True},
               "loss": {"name": "hinge", "r1": 1.0, "r1_every": 3}}  # fmt: skip
    full = make_config(**options, train={"steps": 10, "checkpoint_every": 4})
    train(full, tmp_path / "one", progress=False)
    half = make_config(**options, train={"steps": 5, "checkpoint_every": 4})
    train(half, tmp_path / "two", progress=False)
    resume(tmp_path / "two", {"train": {"steps": 10}}, progress=False)
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert any("parametrizations" in k for k in a["players"]["discriminator"])
    for part in ("players", "ema", "optimizers", "recipe", "rng"):
        same_state(a[part], b[part], part)


def test_bad_loss_options_are_refused_before_any_output(tmp_path: Path, make_config):
    for loss, match in [
        ({"r1": -1.0}, "loss.r1"),
        ({"gp": float("nan")}, "loss.gp"),
        ({"r2_every": 0}, "r2_every"),
        ({"augment": "flip"}, "augmentation"),
    ]:
        with pytest.raises(GanforgeError, match=match):
            train(make_config(loss=loss), tmp_path / "run", progress=False)
        assert not (tmp_path / "run").exists()
    with pytest.raises(GanforgeError, match="schedule"):
        train(make_config(optim={"schedule": "step"}), tmp_path / "run", progress=False)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_penalties_train_under_mixed_precision(tmp_path: Path, make_config, amp: str):
    """Generated images come out of autocast in half precision; the penalties still run."""
    loss = {"name": "wasserstein", "r1": 1.0, "r2": 1.0, "gp": 1.0, "gp_every": 2}
    result = train(make_config(loss=loss, train={"amp": amp, "steps": 4}), tmp_path / "run",
                   progress=False)  # fmt: skip
    assert result.steps == 4
    state = load_checkpoint(tmp_path / "run")
    d = state["players"]["discriminator"]
    assert all(torch.isfinite(t).all() for t in d.values() if t.is_floating_point())


def test_resume_may_switch_mixed_precision_on(tmp_path: Path, make_config):
    train(make_config(train={"steps": 3}), tmp_path / "run", progress=False)
    result = resume(tmp_path / "run", {"train": {"steps": 5, "amp": "fp16"}}, progress=False)
    assert result.steps == 5


@pytest.mark.parametrize(
    ("optim", "match"),
    [({"beta1": 1.5}, "beta1"), ({"beta2": -0.1}, "beta2"),
     ({"momentum": float("nan")}, "momentum"), ({"lr": float("inf")}, "optim.lr"),
     ({"weight_decay": -1.0}, "weight_decay")],
)  # fmt: skip
def test_bad_optimizer_settings_are_one_line_errors(tmp_path: Path, make_config, optim, match):
    with pytest.raises(GanforgeError, match=match):
        train(make_config(optim=optim), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_continuing_a_finished_run_trains_nothing_and_runs_no_end_callbacks(tmp_path: Path):
    ran: list[int] = []
    Engine(Counting(), 5, checkpoint=tmp_path / "c.pt", progress=False).run()
    again = Engine(Counting(), 5, progress=False, callbacks=[Callback(3, lambda e: ran.append(1))])
    again.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    result = again.run()
    assert result.steps_done == 0 and ran == []
