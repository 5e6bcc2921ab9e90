"""Adversarial examples: attacks, the masking-aware evaluation, adversarial training and the
two commands, on the bundled 8x8 digits (no files, seconds on a CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchattacks
from torch import nn

from ganforge.data import load_split
from ganforge.errors import GanforgeError
from ganforge.robustness import (
    RobustnessReport,
    RobustTrainConfig,
    build_classifier,
    evaluate_robustness,
    fgsm,
    load_classifier,
    pgd,
    robust_train,
)
from ganforge.robustness.evaluate import masking_checks
from ganforge.robustness.training import adversarial_loss, to_unit


def _digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = load_split("digits", split)
    return to_unit(data.images), data.labels


@pytest.fixture(scope="module")
def test_digits() -> tuple[torch.Tensor, torch.Tensor]:
    return _digits("test")


def _train(out: Path, **changes) -> Path:
    config = RobustTrainConfig(
        network="mlp", dataset="digits", epochs=15, lr=3e-3, held_out=200, val_steps=5,
        eps_warmup=0.0, **changes,
    )  # fmt: skip
    robust_train(out, config, progress=False)
    return out


@pytest.fixture(scope="module")
def standard_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An undefended MLP on digits (about 94% clean test accuracy)."""
    return _train(tmp_path_factory.mktemp("robust") / "standard", method="standard", eps=0.1)


@pytest.fixture(scope="module")
def standard_model(standard_run: Path) -> nn.Module:
    return load_classifier(standard_run)[0].requires_grad_(False)


# -- attacks -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x, y, e: fgsm(m, x, y, e),
        lambda m, x, y, e: fgsm(m, x, y, e, targeted=True),
        lambda m, x, y, e: pgd(m, x, y, e, steps=5, restarts=2),
        lambda m, x, y, e: pgd(m, x, y, e, steps=5, step_size=e, targeted=True),
        lambda m, x, y, e: pgd(m, x, y, e, steps=5, random_start=False),
    ],
    ids=["fgsm", "fgsm-targeted", "pgd-restarts", "pgd-targeted-big-steps", "pgd-no-start"],
)
def test_linf_attacks_stay_in_the_ball_and_the_box(standard_model, test_digits, attack):
    x, y = test_digits
    for eps in (0.05, 0.3, 0.8):
        adv = attack(standard_model, x, y, eps)
        assert adv.shape == x.shape and adv.dtype == x.dtype
        assert float((adv - x).abs().max()) <= eps + 1e-6
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0


def test_l2_attack_stays_in_the_ball_and_the_box(standard_model, test_digits):
    x, y = test_digits
    for eps in (0.5, 2.0):
        adv = pgd(standard_model, x, y, eps, norm="l2", steps=5, step_size=eps, restarts=2)
        assert float((adv - x).flatten(1).norm(dim=1).max()) <= eps + 1e-5
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
        assert float((adv - x).flatten(1).norm(dim=1).mean()) > 0.3 * eps  # it moved


def test_fgsm_on_a_linear_model_moves_against_the_true_class():
    """Two-class softmax regression: the loss gradient with respect to x is
    (p1 - y1)(w1 - w0), so FGSM moves each pixel by eps * sign(w_other - w_true)."""
    torch.manual_seed(0)
    model = nn.Linear(6, 2)
    x = torch.rand(5, 6) * 0.5 + 0.25  # inside the box even after the step
    y = torch.tensor([0, 1, 0, 1, 1])
    w = model.weight.detach()
    expected = x + 0.1 * torch.sign(w[1 - y] - w[y])
    torch.testing.assert_close(fgsm(model, x, y, 0.1), expected)


def test_pgd_finds_at_least_as_many_errors_as_fgsm(standard_model, test_digits):
    x, y = test_digits
    for eps in (0.05, 0.1):
        wrong_fgsm = (standard_model(fgsm(standard_model, x, y, eps)).argmax(1) != y).sum()
        wrong_pgd = (standard_model(pgd(standard_model, x, y, eps, steps=20)).argmax(1) != y).sum()
        assert int(wrong_pgd) >= int(wrong_fgsm)
        assert int(wrong_pgd) > (standard_model(x).argmax(1) != y).sum()  # it is an attack


def test_targeted_pgd_reaches_its_targets(standard_model, test_digits):
    x, y = test_digits
    target = (y + 1) % 10
    adv = pgd(standard_model, x, target, 0.5, steps=30, targeted=True)
    assert float((standard_model(adv).argmax(1) == target).float().mean()) > 0.9


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_attacks_leave_the_model_as_they_found_it(test_digits, mode):
    x, y = test_digits
    model = build_classifier("mlp", (1, 8, 8), 10).train(mode == "train")
    F.cross_entropy(model(x), y).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    pgd(model, x[:20], y[:20], 0.1, steps=2, restarts=2)
    fgsm(model, x[:20], y[:20], 0.1)
    assert model.training == (mode == "train")
    for p, g in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)


def test_more_restarts_break_a_superset_of_examples(standard_model, test_digits):
    """Restart 0 draws the same start for the same seed, and later restarts only add
    breaks, so 5 restarts break every example 1 restart breaks, and then some."""
    x, y = test_digits

    def broken(restarts: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(3)
        adv = pgd(
            standard_model, x, y, 0.1, steps=1, step_size=0.02, restarts=restarts, generator=g
        )
        return standard_model(adv).argmax(1) != y

    one, five = broken(1), broken(5)
    assert bool((five | ~one).all())  # one implies five
    assert int(five.sum()) > int(one.sum())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x, y: pgd(m, x, y, -0.1), "epsilon"),
        (lambda m, x, y: pgd(m, x, y, 0.1, norm="l1"), "norm"),
        (lambda m, x, y: pgd(m, x, y, 0.1, steps=0), "steps"),
        (lambda m, x, y: pgd(m, x, y, 0.1, restarts=3, random_start=False), "random starts"),
        (lambda m, x, y: pgd(m, x, y, 0.1, step_size=-1.0), "step size"),
        (lambda m, x, y: pgd(m, x * 2 - 1, y, 0.1), "outside the box"),
        (lambda m, x, y: fgsm(m, x, y[:3], 0.1), "labels"),
    ],
)
def test_attack_input_errors(standard_model, test_digits, call, match):
    x, y = test_digits
    with pytest.raises(GanforgeError, match=match):
        call(standard_model, x[:10], y[:10])


# -- agreement with an independent implementation ------------------------------------------------
@pytest.mark.parametrize("random_start", [False, True], ids=["from-x", "random-start"])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_torchattacks_gives_the_same_robust_accuracy(standard_model, norm, random_start):
    # All 1,797 digits, so one point is 18 images and random starts average out.
    x = torch.cat([_digits("train")[0], _digits("test")[0]])
    y = torch.cat([_digits("train")[1], _digits("test")[1]])
    eps, steps = (0.1, 10) if norm == "linf" else (1.0, 10)
    alpha = 2.5 * eps / steps
    kind = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    torch.manual_seed(0)
    theirs = kind(standard_model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    acc_theirs = float((standard_model(theirs(x, y)).argmax(1) == y).float().mean())
    ours = pgd(standard_model, x, y, eps, norm, steps, alpha, random_start=random_start)
    acc_ours = float((standard_model(ours).argmax(1) == y).float().mean())
    clean = float((standard_model(x).argmax(1) == y).float().mean())
    assert acc_ours < clean - 0.1  # the comparison is not between two no-ops
    assert abs(acc_ours - acc_theirs) <= 0.01, (acc_ours, acc_theirs)


# -- evaluation and its gradient-masking checks --------------------------------------------------
class Quantized(nn.Module):
    """Rounds inputs to 4 grey levels first: the gradient through rounding is zero, so
    gradient attacks see nothing, yet the model is no more robust."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 3) / 3)


def test_evaluation_of_an_honest_model_passes_its_checks(standard_model, test_digits):
    x, y = test_digits
    report = evaluate_robustness(
        standard_model, x, y, [0.05, 0.1, 0.2], steps=20, restarts=2, progress=False
    )
    assert report.eps == [0.0, 0.05, 0.1, 0.2]
    assert [c.passed for c in report.checks] == [True] * 4, report.table()
    assert not report.masking_suspected
    assert report.worst_case[-1] < report.clean_accuracy - 0.3
    assert "worst case" in report.table() and "FLAG" not in report.table()


def test_evaluation_flags_a_gradient_masked_model(standard_model, test_digits):
    x, y = test_digits
    masked = Quantized(standard_model).eval()
    report = evaluate_robustness(masked, x, y, [0.05, 0.1, 0.2], steps=10, restarts=1,
                                 progress=False)  # fmt: skip
    assert report.masking_suspected
    failed = {c.name for c in report.checks if not c.passed}
    assert "input gradients are non-zero" in failed
    assert any(name.startswith("about 0") for name in failed)
    assert "FLAG" in report.table() and "masking suspected" in report.table()


def _report(worst, accuracy, large=0.0, zero=0.0, n=10_000) -> RobustnessReport:
    eps = [0.0, 0.1, 0.2][: len(worst)]
    return RobustnessReport("linf", eps, 10, 1, n, worst[0], accuracy, worst, 1.0, large, zero)


def test_masking_checks_on_made_up_reports():
    fine = {"noise": [0.9, 0.8, 0.7], "one-step": [0.9, 0.5, 0.3], "pgd-weak": [0.9, 0.4, 0.2],
            "pgd": [0.9, 0.4, 0.1]}  # fmt: skip
    assert [c.passed for c in masking_checks(_report([0.9, 0.4, 0.1], fine))] == [True] * 4
    rises = masking_checks(_report([0.9, 0.4, 0.5], fine))
    assert [c.passed for c in rises] == [False, True, True, True]
    assert "40.0% at 0.1 < 50.0% at 0.2" in rises[0].detail
    inverted = dict(fine, pgd=[0.9, 0.45, 0.1])  # PGD weaker than weak PGD at 0.1
    checks = masking_checks(_report([0.9, 0.4, 0.1], inverted))
    assert [c.passed for c in checks] == [True, True, False, True]
    assert "pgd 45.0% > pgd-weak 40.0% at 0.1" in checks[2].detail
    noise_wins = dict(fine, noise=[0.9, 0.3, 0.05])  # random noise beats every gradient attack
    assert not masking_checks(_report([0.9, 0.3, 0.05], noise_wins))[2].passed
    assert not masking_checks(_report([0.9, 0.4, 0.1], fine, large=0.05))[1].passed
    assert not masking_checks(_report([0.9, 0.4, 0.1], fine, zero=0.2))[3].passed
    # One image on a set of 100 is within the noise the checks allow; three are not.
    small = dict(fine, pgd=[0.9, 0.41, 0.1])
    assert masking_checks(_report([0.9, 0.4, 0.1], small, n=100))[2].passed
    small = dict(fine, pgd=[0.9, 0.43, 0.1])
    assert not masking_checks(_report([0.9, 0.4, 0.1], small, n=100))[2].passed


# -- adversarial training ------------------------------------------------------------------------
def test_goodfellow_objective_is_the_mixture_of_clean_and_fgsm_losses(standard_model, test_digits):
    x, y = test_digits
    config = RobustTrainConfig(method="goodfellow2014", mix=0.3)
    got = adversarial_loss(standard_model, x, y, config, 0.1)
    clean = F.cross_entropy(standard_model(x), y)
    adv = F.cross_entropy(standard_model(fgsm(standard_model, x, y, 0.1)), y)
    torch.testing.assert_close(got, 0.3 * clean + 0.7 * adv)


def test_fast_training_loss_is_fgsm_from_a_random_start(standard_model, test_digits):
    """Wong et al.'s step by hand: delta ~ U(-eps, eps), one signed step of alpha from
    x + delta (clipped to the box), projected back to the ball and the box."""
    x, y = test_digits
    eps, alpha = 0.1, 0.125
    torch.manual_seed(5)
    got = adversarial_loss(standard_model, x, y, RobustTrainConfig(method="fast"), eps)
    torch.manual_seed(5)
    start = (x + (2 * torch.rand(x.shape) - 1) * eps).clamp(0, 1).requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(standard_model(start), y, reduction="sum"), start)
    adv = (x + (start + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    torch.testing.assert_close(got, F.cross_entropy(standard_model(adv), y))


def test_adversarial_training_makes_a_model_more_robust(
    standard_run, tmp_path, test_digits, cli_many
):
    x, y = test_digits
    robust_run = tmp_path / "fast"
    proc = cli_many(
        {"train": ["robust-train", "--dataset", "digits", "--network", "mlp", "--method", "fast",
                   "--eps", "0.1", "--epochs", "15", "--lr", "3e-3", "--held-out", "200",
                   "--eps-warmup", "0", "--out", robust_run, "--quiet"]}
    )["train"]  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ganforge attack --model" in proc.stdout
    plain, _ = load_classifier(standard_run)
    robust, info = load_classifier(robust_run)
    assert info["network"] == "mlp" and info["train"]["method"] == "fast"

    def pgd_accuracy(m: nn.Module) -> float:
        return float((m(pgd(m, x, y, 0.1, steps=20)).argmax(1) == y).float().mean())

    assert pgd_accuracy(robust) > pgd_accuracy(plain) + 0.2
    summary = json.loads((robust_run / "summary.json").read_text())
    assert summary["test_clean_accuracy"] > 0.8
    # The epoch kept is the first with the best held-out robust accuracy.
    robust_by_epoch = [row["held_out_robust"] for row in summary["history"]]
    assert len(robust_by_epoch) == 15
    assert summary["kept_epoch"] == robust_by_epoch.index(max(robust_by_epoch)) + 1
    assert info["epoch"] == summary["kept_epoch"]
    assert summary["alpha_at_full_eps"] == pytest.approx(0.125)
    assert len((robust_run / "metrics.jsonl").read_text().splitlines()) == 15


def test_robust_train_refuses_bad_settings_and_an_occupied_folder(standard_run):
    with pytest.raises(GanforgeError, match="already holds"):
        robust_train(standard_run, RobustTrainConfig(dataset="digits"), progress=False)
    interrupted = standard_run.parent / "interrupted"
    interrupted.mkdir()
    (interrupted / "model.pt").write_bytes((standard_run / "model.pt").read_bytes())
    with pytest.raises(GanforgeError, match="interrupted"):
        robust_train(interrupted, RobustTrainConfig(dataset="digits"), progress=False)
    for bad, match in [
        (dict(method="madry"), "method"),
        (dict(network="resnet"), "resnet"),
        (dict(eps=0.0), "epsilon"),
        (dict(held_out=1700), "too few"),
        (dict(alpha=-0.1), "alpha"),
        (dict(val_steps=0), "val_steps"),
    ]:
        with pytest.raises(GanforgeError, match=match):
            robust_train(standard_run.parent / "new",
                         RobustTrainConfig(dataset="digits", **bad), progress=False)  # fmt: skip


def test_saved_classifier_round_trip_and_bad_files(standard_run, tmp_path, test_digits):
    x, _ = test_digits
    model, info = load_classifier(standard_run / "model.pt")
    again, _ = load_classifier(standard_run)
    torch.testing.assert_close(model(x), again(x))
    assert info["shape"] == [1, 8, 8] and info["num_classes"] == 10
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(GanforgeError, match="not a readable"):
        load_classifier(junk)
    with pytest.raises(GanforgeError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt")


# -- commands ------------------------------------------------------------------------------------
def test_attack_command_writes_report_plot_and_examples(standard_run, tmp_path, cli_many):
    out = tmp_path / "report"
    proc = cli_many(
        {"attack": ["attack", "--model", str(standard_run), "--eps", "0.1", "0.2", "--steps",
                    "10", "--restarts", "1", "-n", "100", "--out", str(out), "--quiet"]}
    )["attack"]  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "worst case" in proc.stdout and "gradient-masking checks" in proc.stdout
    report = json.loads((out / "robustness.json").read_text())
    assert report["eps"] == [0.0, 0.1, 0.2] and report["n"] == 100
    assert report["accuracy"]["pgd"][2] < report["clean_accuracy"]
    from PIL import Image

    assert Image.open(out / "robustness.png").size[0] > 100
    w, h = Image.open(out / "examples.png").size
    assert w > h > 0  # 8 columns, 3 rows (clean, adversarial, difference)


def test_robustness_commands_reject_bad_input(standard_run, tmp_path, cli_many, one_line_error):
    cases = {
        "does not exist": ["attack", "--model", tmp_path / "nope.pt"],
        "epsilon": ["attack", "--model", standard_run, "--eps", "-1", "-n", "5"],
        "vit": ["robust-train", "--dataset", "digits", "--network", "vit", "--out", tmp_path / "a"],
    }
    for fragment, proc in cli_many(cases).items():
        one_line_error(proc, fragment)
