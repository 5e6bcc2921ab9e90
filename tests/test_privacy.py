"""Differentially private training: the accountant against closed forms, the budget kept
and refused past, per-image clipping as a sensitivity bound, synthetic data with its
datasheet, the utility protocol on real data, and the membership audit's extremes."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.stats import norm

from ganforge.data import load_mnist
from ganforge.errors import GanforgeError
from ganforge.metrics.downstream import downstream_accuracy
from ganforge.privacy.accountant import epsilon_spent, noise_multiplier
from ganforge.privacy.audit import attack_result, distance_scores
from ganforge.synthesize import synthesize
from ganforge.train import Trainer, resume, train
from ganforge.train.checkpoint import load_checkpoint
from ganforge.train.engine import Callback
from tests.conftest import MNIST_DIR

PRIVATE = {
    "model": {"network": "dcgan-cond-dp"},
    "train": {"steps": 6, "k": 2, "batch_size": 32},
    "privacy": {"enabled": True, "epsilon": 5.0, "delta": 1e-5},
}


def private_config(make_config, **extra):
    sections = {k: {**v, **extra.get(k, {})} for k, v in PRIVATE.items()}
    return make_config(**{**extra, **sections})


# -- the accountant ---------------------------------------------------------------------------


def gaussian_delta(eps: float, mu: float) -> float:
    """The exact delta(epsilon) of a Gaussian mechanism of sensitivity 1 and noise 1/mu
    (Balle & Wang, 2018); T full-batch steps at noise sigma compose to mu = sqrt(T)/sigma."""
    return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)


def test_prv_accountant_matches_the_exact_gaussian_mechanism():
    sigma, steps, delta = 2.0, 10, 1e-5
    exact = brentq(lambda e: gaussian_delta(e, math.sqrt(steps) / sigma) - delta, 1e-3, 50)
    assert epsilon_spent(sigma, 1.0, steps, delta, "prv") == pytest.approx(exact, rel=0.02)
    # RDP is an upper bound on the same mechanism, loose by a known margin.
    rdp = epsilon_spent(sigma, 1.0, steps, delta, "rdp")
    assert exact < rdp < 1.3 * exact


@pytest.mark.parametrize("epsilon", [1.0, 10.0])
def test_planned_noise_gives_back_the_target_epsilon(epsilon):
    q, steps, delta = 128 / 60_000, 5_000, 1e-5
    sigma = noise_multiplier(epsilon, delta, q, steps)
    spent = epsilon_spent(sigma, q, steps, delta)
    assert spent <= epsilon and spent == pytest.approx(epsilon, rel=0.01)
    # Less noise would overspend: sigma is the smallest that keeps the budget.
    assert epsilon_spent(0.97 * sigma, q, steps, delta) > epsilon
    # More steps at the same noise spend more.
    assert epsilon_spent(sigma, q, 2 * steps, delta) > spent


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
def test_planned_noise_matches_opacus_own_planner():
    from opacus.accountants.utils import get_noise_multiplier

    q, steps, delta = 256 / 60_000, 2_000, 1e-5
    theirs = get_noise_multiplier(
        target_epsilon=3.0, target_delta=delta, sample_rate=q, steps=steps, accountant="rdp"
    )
    assert noise_multiplier(3.0, delta, q, steps) == pytest.approx(theirs, rel=0.01)


# -- a private run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_run(tmp_path_factory, make_config) -> Path:
    run = tmp_path_factory.mktemp("private") / "run"
    train(private_config(make_config), run, progress=False)
    return run


def test_a_private_run_spends_its_budget_and_no_more(private_run: Path):
    report = json.loads((private_run / "privacy.json").read_text())
    assert report["discriminator_steps_done"] == report["discriminator_steps_planned"] == 12
    assert report["epsilon_spent"] <= 5.0
    assert report["epsilon_spent"] == pytest.approx(5.0, rel=0.01)
    assert report["sample_rate"] == pytest.approx(32 / report["records"])
    for key in ("delta", "accountant", "noise_multiplier", "clip"):
        assert key in report
    rows = [
        json.loads(line) for line in (private_run / "metrics.jsonl").read_text().split("\n") if line
    ]
    spent = [r["epsilon"] for r in rows]
    assert spent == sorted(spent) and spent[-1] == pytest.approx(report["epsilon_spent"])


def test_continuing_a_private_run_past_its_budget_is_refused(private_run: Path):
    before = (private_run / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(GanforgeError, match="privacy budget"):
        resume(private_run, {"train": {"steps": 12}}, progress=False)
    assert (private_run / "checkpoints" / "last.pt").read_bytes() == before


def test_an_interrupted_private_run_resumes_exactly(tmp_path: Path, make_config, same_state):
    cfg = private_config(make_config)
    train(cfg, tmp_path / "one", progress=False)

    trainer = Trainer(cfg, tmp_path / "two", progress=False)
    trainer.engine.callbacks.append(Callback(3, lambda e: os.kill(os.getpid(), signal.SIGINT)))
    assert trainer.run().interrupted
    assert load_checkpoint(tmp_path / "two")["step"] == 3
    resume(tmp_path / "two", progress=False)
    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    for part in ("players", "ema", "optimizers", "recipe", "rng", "step"):
        same_state(a[part], b[part], part)


def test_clipping_bounds_what_one_record_adds_to_the_gradient(make_config):
    cfg = private_config(make_config, privacy={"clip": 0.05})
    recipe = Trainer(cfg, "/nonexistent/not-written", progress=False).recipe
    recipe.dp_optimizer.noise_multiplier = 0.0
    g = recipe.g
    real, labels = recipe.data.batch(torch.arange(8))
    fake_labels = torch.arange(8) % 10
    with torch.no_grad():
        fake = g(torch.randn(8, g.z_dim), fake_labels)

    def summed_gradient(rows: torch.Tensor) -> torch.Tensor:
        opt = recipe.dp_optimizer
        opt.zero_grad(set_to_none=True)
        loss, _ = recipe.d_loss(real[rows], labels[rows], fake, fake_labels)
        loss.backward()
        raw = [p.grad_sample[: len(rows)].flatten(1) for p in opt.params]
        opt.pre_step()  # clip, add (no) noise, divide by the expected batch
        grad = torch.cat([p.grad.flatten() for p in opt.params])
        return grad * opt.expected_batch_size, torch.cat(raw, 1).norm(dim=1)

    everyone = torch.arange(8)
    full, raw_norms = summed_gradient(everyone)
    assert raw_norms.max() > 0.05  # the clip is active: the bound is not vacuous
    for j in range(8):
        without, _ = summed_gradient(everyone[everyone != j])
        assert (full - without).norm() <= 0.05 * (1 + 1e-4)


# -- labelled synthetic data ------------------------------------------------------------------


def test_synthesize_writes_labelled_data_and_its_datasheet(private_run: Path, tmp_path: Path):
    out = synthesize(
        private_run, 40, tmp_path / "synth", command="ganforge synthesize ...", progress=False
    )
    files = sorted(p.name for p in (tmp_path / "synth").iterdir())
    assert files == ["datasheet.json", "datasheet.md", "synthetic.npz"]  # 8x8: no IDX pair
    with np.load(tmp_path / "synth" / "synthetic.npz") as f:
        assert f["images"].shape == (40, 8, 8, 1) and f["images"].dtype == np.uint8
        assert np.bincount(f["labels"]).tolist() == [4] * 10
    sheet = json.loads((tmp_path / "synth" / "datasheet.json").read_text())
    assert sheet["privacy"]["epsilon_spent"] <= 5.0 and sheet["privacy"]["delta"] == 1e-5
    assert sheet["training_data"]["dataset"] == "digits" and sheet["command"]
    assert "differential privacy" in (tmp_path / "synth" / "datasheet.md").read_text()
    assert out.images.shape == (40, 1, 8, 8)
    with pytest.raises(GanforgeError, match="--force"):
        synthesize(private_run, 40, tmp_path / "synth", progress=False)
    stale = tmp_path / ".synth.999999999.x.tmp"  # what a killed run (a dead process) left
    stale.mkdir()
    again = synthesize(private_run, 20, tmp_path / "synth", force=True, progress=False)
    assert len(again.labels) == 20
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(GanforgeError, match="other files"):
        synthesize(private_run, 20, mine, force=True, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "synth"]  # no temporaries


def test_synthesized_mnist_reads_back_as_an_mnist_training_set(tmp_path: Path, make_config):
    cfg = make_config(
        data={"name": "mnist", "root": str(MNIST_DIR), "limit": 500},
        model={"network": "dcgan-cond", "width": 8},
        train={"steps": 1},
    )
    train(cfg, tmp_path / "run", progress=False)
    made = synthesize(tmp_path / "run", 30, tmp_path / "synth", progress=False)
    back = load_mnist(tmp_path / "synth", "train", download=False)
    assert torch.equal(back.images, made.images) and torch.equal(back.labels, made.labels)
    assert json.loads((tmp_path / "synth" / "datasheet.json").read_text())["privacy"].startswith(
        "none"
    )


def test_synthesize_refuses_an_unconditional_generator(uncond_run: Path, tmp_path: Path):
    with pytest.raises(GanforgeError, match="class-conditional"):
        synthesize(uncond_run, 10, tmp_path / "synth", progress=False)
    assert not (tmp_path / "synth").exists()


# -- the utility protocol and the audit ---------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_parts():
    train_set = load_mnist(MNIST_DIR, "train", download=False)
    test_set = load_mnist(MNIST_DIR, "test", download=False)
    return train_set, test_set


def test_utility_protocol_on_real_digits_gives_a_real_classifiers_accuracy(mnist_parts):
    train_set, test_set = mnist_parts
    x, y = train_set.images[:3000], train_set.labels[:3000]
    tx, ty = test_set.images[:2000], test_set.labels[:2000]
    real = downstream_accuracy(x, y, tx, ty, epochs=3, progress=False)
    # 2,400 real digits (600 pick the epoch), 3 epochs: about 93% (the full protocol on all
    # 60,000: 99%, benchmarks/README.md).
    assert real.accuracy > 0.90, real
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    noise = downstream_accuracy(x, shuffled, tx, ty, epochs=1, progress=False)
    assert noise.accuracy < 0.2  # labels that say nothing teach nothing


def test_audit_catches_a_memorizing_generator_and_not_an_honest_one(mnist_parts):
    train_set, test_set = mnist_parts
    members, nonmembers = train_set.images[:300], test_set.images[:300]
    copier = train_set.images[:2000]  # "generates" its training records, members among them
    caught = attack_result(distance_scores(copier, members), distance_scores(copier, nonmembers))
    assert caught.auc > 0.99 and caught.tpr_at_1pct_fpr > 0.95
    honest = test_set.images[1000:3000]  # fresh digits of the same distribution
    blind = attack_result(distance_scores(honest, members), distance_scores(honest, nonmembers))
    assert abs(blind.auc - 0.5) < 0.07


def test_attack_result_against_closed_forms():
    r = attack_result(torch.tensor([2.0, 3.0, 4.0]), torch.tensor([0.0, 1.0]))
    assert r.auc == 1.0 and r.tpr_at_1pct_fpr == 1.0
    r = attack_result(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0]))
    assert r.auc == pytest.approx(0.25)  # 1 of 4 member/non-member pairs ordered right


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, fragments",
    [
        (["--epsilon", "0"], ["epsilon", "positive"]),
        (["--delta", "0.01"], ["delta", "1/n"]),
        (["--network", "dcgan-cond"], ["dcgan-cond-dp"]),
        (["--network", "dcgan"], ["class-conditional"]),
        (["--network", "dcgan-cond-dp", "--loss", "relativistic"], ["sum over images"]),
        (["--network", "dcgan-cond-dp", "--r1", "1"], ["penalties"]),
        (["--network", "mlp2014-cond"], ["mean"]),
        (["--network", "dcgan-cond-dp", "--spectral-norm"], ["spectral"]),
    ],
)
def test_bad_private_input_is_one_line_and_writes_nothing(
    tmp_path: Path, cli_env, flags, fragments, one_line_error, cli_many
):
    out = tmp_path / "run"
    base = ["train", "--dataset", "digits", "--private", "--steps", "2", "--out", out]
    if "--network" not in flags:
        base += ["--network", "dcgan-cond-dp"]
    proc = cli_many({"x": [*base, *flags]})["x"]
    one_line_error(proc, *fragments)
    assert not out.exists()


def test_private_images_stay_in_range(private_run: Path):
    from ganforge.sampling import load_generator, sample

    images, labels = sample(load_generator(private_run), 20, class_label=3)
    assert images.min() >= -1 and images.max() <= 1 and (labels == 3).all()
