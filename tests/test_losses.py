"""Adversarial losses and penalties against hand-computed values, finite differences and a
toy game every loss must learn."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.losses import LOSSES, REGULARIZERS, DiffAugment, build_loss

LOG2 = math.log(2.0)
REAL = [-2.0, 0.5, 3.0]
FAKE = [1.5, -0.25, -4.0]
ALL_LOSSES = ["minimax", "nonsaturating", "hinge", "wasserstein", "least-squares", "relativistic"]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _d_logistic(real: list[float], fake: list[float]) -> float:
    # -[mean log D(x) + mean log(1 - D(G(z)))]
    return -_mean(math.log(_sigmoid(r)) for r in real) - _mean(
        math.log(1 - _sigmoid(f)) for f in fake
    )


# Each loss's (discriminator, generator) value on REAL and FAKE, by hand.
EXPECTED = {
    "minimax": (
        _d_logistic(REAL, FAKE),
        _mean(math.log(1 - _sigmoid(f)) for f in FAKE),
    ),
    "nonsaturating": (
        _d_logistic(REAL, FAKE),
        _mean(-math.log(_sigmoid(f)) for f in FAKE),
    ),
    "hinge": (
        _mean(max(0.0, 1 - r) for r in REAL) + _mean(max(0.0, 1 + f) for f in FAKE),
        -_mean(FAKE),
    ),
    "wasserstein": (_mean(FAKE) - _mean(REAL), -_mean(FAKE)),
    "least-squares": (
        0.5 * (_mean((r - 1) ** 2 for r in REAL) + _mean(f**2 for f in FAKE)),
        0.5 * _mean((f - 1) ** 2 for f in FAKE),
    ),
    "relativistic": (
        _mean(_softplus(f - r) for r, f in zip(REAL, FAKE, strict=True)),
        _mean(_softplus(r - f) for r, f in zip(REAL, FAKE, strict=True)),
    ),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_each_loss_matches_its_hand_computed_values(name: str):
    loss = build_loss(name)
    real, fake = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    d_expected, g_expected = EXPECTED[name]
    assert loss.d_value(real, fake).item() == pytest.approx(d_expected, rel=1e-9)
    assert loss.g_value(real, fake).item() == pytest.approx(g_expected, rel=1e-9)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating"])
def test_logistic_discriminator_loss_at_zero_logits_is_two_log_two(name: str):
    zeros = torch.zeros(5)
    assert build_loss(name).d_value(zeros, zeros).item() == pytest.approx(2 * LOG2, rel=1e-6)


def test_losses_stay_finite_for_confident_discriminators():
    real, fake = torch.tensor([100.0, 80.0]), torch.tensor([-100.0, -90.0])
    for name in ALL_LOSSES:
        loss = build_loss(name)
        assert torch.isfinite(loss.d_value(real, fake)), name
        assert torch.isfinite(loss.g_value(real, fake)), name
    assert build_loss("nonsaturating").d_value(real, fake).item() == pytest.approx(0, abs=1e-6)
    ns = build_loss("nonsaturating").g_value(real, fake)
    assert ns.item() == pytest.approx(95.0, rel=1e-4)


def test_minimax_saturates_where_nonsaturating_does_not():
    """The reason the practical variant exists: when D confidently rejects the fakes,
    log(1 - D(G(z))) has almost no gradient, -log D(G(z)) has a strong one."""
    grads = {}
    for name in ("minimax", "nonsaturating"):
        logits = torch.tensor([-8.0], requires_grad=True)
        build_loss(name).g_value(None, logits).backward()
        grads[name] = logits.grad.item()
    assert abs(grads["minimax"]) < 1e-3
    assert abs(grads["nonsaturating"]) > 0.99
    assert grads["minimax"] < 0 and grads["nonsaturating"] < 0  # both push the logit up


def test_loss_runs_the_critic_sees_labels_and_reports_named_statistics():
    seen = []

    def critic(x, y):
        seen.append(y)
        return x.sum(dim=1)

    real, fake = torch.zeros(2, 3), torch.ones(2, 3)
    labels = torch.tensor([1, 2])
    loss = build_loss("nonsaturating")
    terms = loss.discriminator(critic, real, fake, labels)
    assert terms.loss.item() == pytest.approx(_d_logistic([0, 0], [3, 3]), rel=1e-6)
    assert terms.stats["d_real"].item() == pytest.approx(0.5)
    assert terms.stats["d_fake"].item() == pytest.approx(_sigmoid(3.0), rel=1e-6)
    g_terms = loss.generator(critic, real, fake, labels)
    assert g_terms.loss.item() == pytest.approx(-math.log(_sigmoid(3.0)), rel=1e-6)
    assert set(g_terms.stats) == {"loss_g"}
    assert all(y is labels for y in seen)
    # A critic without probabilities reports its raw outputs, not a sigmoid.
    w = build_loss("wasserstein").discriminator(critic, real, fake, labels)
    assert set(w.stats) == {"loss_d", "critic_real", "critic_fake"}
    assert w.stats["critic_fake"].item() == pytest.approx(3.0)


def test_relativistic_generator_sees_the_real_batch_without_a_gradient_through_it():
    d = nn.Linear(3, 1)
    critic = lambda x, y: d(x).squeeze(1)  # noqa: E731
    real, fake = torch.randn(4, 3), torch.randn(4, 3, requires_grad=True)
    terms = build_loss("relativistic").generator(critic, real, fake, None)
    with torch.no_grad():
        expected = torch.nn.functional.softplus(critic(real, None) - critic(fake, None)).mean()
    assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    terms.loss.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_registry_knows_every_loss_and_unknown_names_are_clear_errors():
    assert set(ALL_LOSSES) <= set(LOSSES.names())
    with pytest.raises(GanforgeError, match="unknown loss 'wgan'") as err:
        build_loss("wgan")
    assert "relativistic" in str(err.value)


# -- penalties ----------------------------------------------------------------------------


class Quadratic(nn.Module):
    """D(x) = sum(a * x^2) + b.x: its input gradient 2 a x + b is known in closed form."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.rand(dim, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(dim, generator=g, dtype=torch.float64))

    def forward(self, x, y=None):
        flat = x.flatten(1)
        return (self.a * flat.square()).sum(1) + flat @ self.b


def _closed_form(name: str, d: Quadratic, real, fake, t=None) -> float:
    def sq_norms(x):
        return (2 * d.a * x.flatten(1) + d.b).square().sum(1)

    if name == "r1":
        return 0.5 * sq_norms(real).mean().item()
    if name == "r2":
        return 0.5 * sq_norms(fake).mean().item()
    mixed = real + t * (fake - real)
    return ((sq_norms(mixed).sqrt() - 1).square()).mean().item()


@pytest.mark.parametrize("name", ["r1", "r2", "gp"])
def test_penalties_match_their_closed_forms(name: str):
    d = Quadratic(6)
    real = torch.randn(5, 1, 2, 3, dtype=torch.float64)
    fake = torch.randn(5, 1, 2, 3, dtype=torch.float64)
    reg = REGULARIZERS.get(name)(1.0)
    torch.manual_seed(7)
    got = reg(d, real, fake, None).loss.item()
    torch.manual_seed(7)
    t = torch.rand(5, 1, 1, 1).double()  # the same draws the gradient penalty makes
    assert got == pytest.approx(_closed_form(name, d, real, fake, t), rel=1e-9)


@pytest.mark.parametrize("name", ["r1", "r2", "gp"])
def test_penalty_gradients_match_finite_differences(name: str):
    """The penalties differentiate twice (through the input gradient); their gradient with
    respect to the critic's weights must match central differences."""
    d = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 1)).double()

    def critic(x, y):
        return d(x).squeeze(1)

    real = torch.randn(6, 4, dtype=torch.float64)
    fake = torch.randn(6, 4, dtype=torch.float64)
    reg = REGULARIZERS.get(name)(3.0, every=2)

    def value() -> torch.Tensor:
        torch.manual_seed(3)  # the gradient penalty's mixing draws, the same every call
        return reg(critic, real, fake, None).loss

    d.zero_grad()
    value().backward()
    weight = d[0].weight
    analytic = weight.grad.clone()
    numeric = torch.zeros_like(weight)
    h = 1e-6
    for i in range(5):
        for j in range(4):
            old = weight[i, j].item()
            with torch.no_grad():
                weight[i, j] = old + h
            up = value().item()
            with torch.no_grad():
                weight[i, j] = old - h
            down = value().item()
            with torch.no_grad():
                weight[i, j] = old
            numeric[i, j] = (up - down) / (2 * h)
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_a_lazy_penalty_is_scaled_by_its_interval():
    d = Quadratic(6)
    real, fake = torch.randn(3, 6).double(), torch.randn(3, 6).double()
    every = REGULARIZERS.get("r1")(2.0, every=16)(d, real, fake, None)
    once = REGULARIZERS.get("r1")(2.0, every=1)(d, real, fake, None)
    assert every.loss.item() == pytest.approx(16 * once.loss.item(), rel=1e-12)
    assert every.stats["r1"].item() == pytest.approx(once.stats["r1"].item(), rel=1e-12)


# -- differentiable augmentation -----------------------------------------------------------


def test_diffaugment_keeps_shapes_changes_images_and_passes_gradients():
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    for policy in ("translation", "cutout", "color", "translation,cutout,color"):
        torch.manual_seed(1)
        out = DiffAugment(policy)(x)
        assert out.shape == x.shape
        assert not torch.equal(out, x), policy
        out.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
        x.grad = None
    assert DiffAugment("")(x) is x


def test_translation_moves_pixels_without_changing_them():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(16, 1, 1, 1) + 1
    torch.manual_seed(0)
    out = DiffAugment("translation")(x)
    for img in out:
        kept = img[img != 0]
        assert set(kept.tolist()) <= set(x[0].flatten().tolist())
        assert len(kept) >= 7 * 7  # at most one row and column of 8x8 leave the frame


def test_unknown_augmentation_is_a_clear_error():
    with pytest.raises(GanforgeError, match="unknown augmentation 'flip'"):
        DiffAugment("translation,flip")


# -- a toy game every loss must learn ------------------------------------------------------

RING = 8


def _ring_centres() -> torch.Tensor:
    angles = torch.arange(RING) * (2 * math.pi / RING)
    return torch.stack([angles.cos(), angles.sin()], 1) * 2.0


def _modes_covered(samples: torch.Tensor) -> int:
    """Modes holding at least 2% of the samples within 0.6 of their centre (12 standard
    deviations of the data; neighbouring centres are 1.53 apart)."""
    dist = torch.cdist(samples, _ring_centres())
    near, mode = dist.min(1)
    counts = torch.bincount(mode[near < 0.6], minlength=RING)
    return int((counts >= 0.02 * len(samples)).sum())


def _play(name: str, steps: int, penalties: dict[str, float], k: int = 1) -> torch.Tensor:
    torch.manual_seed(0)
    g = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    d = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    opt_g = torch.optim.Adam(g.parameters(), 1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 1e-3, betas=(0.5, 0.9))
    loss = build_loss(name)
    regs = [REGULARIZERS.get(k)(w) for k, w in penalties.items()]
    centres = _ring_centres()

    def critic(x, y):
        return d(x).squeeze(1)

    for _ in range(steps):
        d.requires_grad_(True)
        for _ in range(k):
            real = centres[torch.randint(0, RING, (128,))] + 0.05 * torch.randn(128, 2)
            fake = g(torch.randn(128, 4))
            terms = loss.discriminator(critic, real, fake.detach(), None)
            penalty = sum((r(critic, real, fake, None).loss for r in regs), torch.zeros(()))
            opt_d.zero_grad()
            (terms.loss + penalty).backward()
            opt_d.step()
        d.requires_grad_(False)
        g_loss = loss.generator(critic, real, fake, None).loss
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
    with torch.no_grad():
        return g(torch.randn(2000, 4))


# Settings as a user would pair them: (generator steps, critic steps per generator step,
# penalties); the Wasserstein critic needs its Lipschitz penalty and more steps.
TOY_GAMES = {
    "minimax": (800, 1, {}),
    "nonsaturating": (800, 1, {}),
    "hinge": (800, 1, {}),
    "wasserstein": (500, 5, {"gp": 1.0}),
    "least-squares": (800, 1, {}),
    "relativistic": (800, 1, {"r1": 0.1, "r2": 0.1}),
}


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_loss_learns_the_ring_of_eight_gaussians(name: str):
    steps, k, penalties = TOY_GAMES[name]
    samples = _play(name, steps, penalties, k)
    assert _modes_covered(samples) >= 7


def test_the_mode_count_fails_a_collapsed_generator():
    centres = _ring_centres()
    collapsed = centres[[0, 0, 1]].repeat_interleave(700, 0)[:2000]
    collapsed = collapsed + 0.05 * torch.randn_like(collapsed)
    assert _modes_covered(collapsed) == 2
    spread = centres[torch.arange(2000) % RING] + 0.05 * torch.randn(2000, 2)
    assert _modes_covered(spread) == RING
