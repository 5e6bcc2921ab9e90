"""GAN value functions against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.losses import LOSSES, build_loss

LOG2 = math.log(2.0)
REAL = [-2.0, 0.5, 3.0]
FAKE = [1.5, -0.25, -4.0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _d_expected(real: list[float], fake: list[float]) -> float:
    # -[mean log D(x) + mean log(1 - D(G(z)))]
    return -_mean(math.log(_sigmoid(r)) for r in real) - _mean(
        math.log(1 - _sigmoid(f)) for f in fake
    )


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_discriminator_loss_at_zero_logits_is_two_log_two(name: str):
    loss = build_loss(name)
    zeros = torch.zeros(5)
    assert loss.d_value(zeros, zeros).item() == pytest.approx(2 * LOG2, rel=1e-6)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_discriminator_loss_matches_hand_computation(name: str):
    loss = build_loss(name)
    value = loss.d_value(torch.tensor(REAL), torch.tensor(FAKE)).item()
    assert value == pytest.approx(_d_expected(REAL, FAKE), rel=1e-6)


def test_generator_losses_at_zero_logits():
    zeros = torch.zeros(3)
    assert build_loss("nonsaturating").g_value(zeros).item() == pytest.approx(LOG2, rel=1e-6)
    assert build_loss("minimax").g_value(zeros).item() == pytest.approx(-LOG2, rel=1e-6)


def test_nonsaturating_generator_loss_is_minus_log_d():
    value = build_loss("nonsaturating").g_value(torch.tensor(FAKE)).item()
    assert value == pytest.approx(_mean(-math.log(_sigmoid(f)) for f in FAKE), rel=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d():
    value = build_loss("minimax").g_value(torch.tensor(FAKE)).item()
    assert value == pytest.approx(_mean(math.log(1 - _sigmoid(f)) for f in FAKE), rel=1e-6)


def test_losses_stay_finite_for_confident_discriminators():
    real, fake = torch.tensor([100.0, 80.0]), torch.tensor([-100.0, -90.0])
    for name in ("minimax", "nonsaturating"):
        loss = build_loss(name)
        d = loss.d_value(real, fake)
        assert torch.isfinite(d) and d.item() == pytest.approx(0.0, abs=1e-6)
    ns = build_loss("nonsaturating").g_value(fake)
    assert torch.isfinite(ns) and ns.item() == pytest.approx(95.0, rel=1e-4)


def test_minimax_saturates_where_nonsaturating_does_not():
    """The reason the practical variant exists: when D confidently rejects the fakes,
    log(1 - D(G(z))) has almost no gradient, -log D(G(z)) has a strong one."""
    grads = {}
    for name in ("minimax", "nonsaturating"):
        logits = torch.tensor([-8.0], requires_grad=True)
        build_loss(name).g_value(logits).backward()
        grads[name] = logits.grad.item()
    assert abs(grads["minimax"]) < 1e-3
    assert abs(grads["nonsaturating"]) > 0.99
    # Both push the fake logit up (towards "real").
    assert grads["minimax"] < 0 and grads["nonsaturating"] < 0


def test_loss_runs_the_critic_and_reports_its_logits():
    seen = []

    def critic(x, y):
        seen.append(y)
        return x.sum(dim=1)

    real, fake = torch.zeros(2, 3), torch.ones(2, 3)
    labels = torch.tensor([1, 2])
    loss = build_loss("nonsaturating")
    terms = loss.discriminator(critic, real, fake, labels)
    torch.testing.assert_close(terms.real_logits, torch.zeros(2))
    torch.testing.assert_close(terms.fake_logits, torch.full((2,), 3.0))
    assert terms.loss.item() == pytest.approx(_d_expected([0, 0], [3, 3]), rel=1e-6)
    g_terms = loss.generator(critic, fake, labels)
    assert g_terms.loss.item() == pytest.approx(-math.log(_sigmoid(3.0)), rel=1e-6)
    assert all(y is labels for y in seen)


def test_registry_knows_both_losses():
    assert {"minimax", "nonsaturating"} <= set(LOSSES.names())


def test_unknown_loss_name_is_a_clear_error():
    with pytest.raises(GanforgeError, match="unknown loss 'wasserstein'") as err:
        build_loss("wasserstein")
    assert "minimax" in str(err.value) and "nonsaturating" in str(err.value)
