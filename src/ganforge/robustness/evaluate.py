"""Robustness evaluation that guards against fooling oneself.

For each epsilon, four attacks run on the same images: random noise in the ball, a single
gradient step (FGSM; for L2, one step of length epsilon), a weak PGD (a tenth of the
steps, one start) and the full PGD (all steps and restarts). An example counts as robust to
an attack when it is classified correctly both clean and attacked; the *worst case* counts
it only when no attack broke it.

Gradient masking (Athalye et al., 2018; Carlini et al., 2019) makes gradient attacks fail
without making a model robust. The report runs four checks that commonly masked models
(zero, shattered or saturated gradients) fail; they are heuristics, not a proof of
robustness:

1. robust accuracy falls (does not rise) as epsilon grows;
2. at an epsilon as large as the input box, PGD brings accuracy to about 0 (any image is
   reachable, so a robust answer is impossible; checked on the first 1,000 images);
3. stronger attacks do no worse than weaker ones (full PGD <= weak PGD <= one step, and
   every gradient attack <= random noise);
4. the loss has a non-zero input gradient on nearly all examples.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes
from ganforge.robustness.attacks import NORMS, Box, _flat_norm, _loss_grad, fgsm, pgd

ATTACKS = ("noise", "one-step", "pgd-weak", "pgd")
TOLERANCE = 0.005  # accuracy differences below half a point are noise (or 2 images if more)
NEAR_ZERO = 0.02  # "about 0": at most 2% robust at the box-sized epsilon
LARGE_EPS_IMAGES = 1000  # images the box-sized epsilon is checked on


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class RobustnessReport:
    norm: str
    eps: list[float]
    steps: int
    restarts: int
    n: int
    clean_accuracy: float
    accuracy: dict[str, list[float]]  # attack -> accuracy at each eps
    worst_case: list[float]
    large_eps: float
    large_eps_accuracy: float
    zero_gradient_fraction: float
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def masking_suspected(self) -> bool:
        return not all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"masking_suspected": self.masking_suspected}

    def table(self) -> str:
        head = ["eps", *ATTACKS, "worst case"]
        lines = [
            f"clean accuracy {100 * self.clean_accuracy:.2f}% on {self.n} images; "
            f"{self.norm} attacks, PGD {self.steps} steps x {self.restarts} restarts",
            "| " + " | ".join(head) + " |",
            "|" + " ---: |" * len(head),
        ]
        for i, e in enumerate(self.eps):
            cells = [f"{100 * self.accuracy[a][i]:.2f}" for a in ATTACKS]
            lines.append(
                f"| {e:g} | " + " | ".join(cells) + f" | **{100 * self.worst_case[i]:.2f}** |"
            )
        lines.append("")
        lines.append("gradient-masking checks:")
        for c in self.checks:
            lines.append(f"  [{'pass' if c.passed else 'FLAG'}] {c.name}: {c.detail}")
        if self.masking_suspected:
            lines.append("  => gradient masking suspected: do not trust these robust accuracies")
        return "\n".join(lines)


def _correct(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1) == y


def _noise(x: Tensor, eps: float, norm: str, box: Box, g: torch.Generator) -> Tensor:
    """Random points of the ball: L-inf corners (+-eps per pixel), L2 on the sphere; then
    clipped to the box (which pulls them inside the ball where pixels sit at its edge)."""
    if norm == "linf":
        signs = torch.randint(0, 2, x.shape, generator=g).to(x.device) * 2 - 1
        return (x + eps * signs).clamp(*box)
    d = torch.randn(x.shape, generator=g).to(x.device)
    return (x + eps * d / _flat_norm(d)).clamp(*box)


def _attack(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str,
    steps: int,
    restarts: int,
    box: Box,
    g: torch.Generator,
) -> Tensor:
    if eps == 0:
        return x
    if name == "noise":
        return _noise(x, eps, norm, box, g)
    if name == "one-step":
        if norm == "linf":
            return fgsm(model, x, y, eps, box=box)
        return pgd(model, x, y, eps, "l2", steps=1, step_size=eps, random_start=False, box=box)
    if name == "pgd-weak":
        return pgd(model, x, y, eps, norm, steps=max(1, steps // 10), box=box, generator=g)
    return pgd(model, x, y, eps, norm, steps=steps, restarts=restarts, box=box, generator=g)


def evaluate_robustness(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: list[float] | tuple[float, ...],
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 5,
    box: Box = (0.0, 1.0),
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> RobustnessReport:
    """Clean, per-attack and worst-case accuracy of ``model`` (in eval mode, on ``x``'s
    device) at each epsilon, with the gradient-masking checks. ``x`` is float (N, C, H, W)
    in ``box``; ``y`` the true labels."""
    import time

    if norm not in NORMS:
        raise GanforgeError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    if not eps or not all(math.isfinite(e) and e >= 0 for e in eps):
        raise GanforgeError(f"give at least one epsilon, each finite and >= 0, got {list(eps)}")
    eps = sorted({0.0, *(float(e) for e in eps)})  # 0: the clean accuracy starts the curve
    if len(x) == 0 or len(x) != len(y):
        raise GanforgeError(f"need images with one label each, got {len(x)} and {len(y)}")
    if not 0 <= seed < 2**63:
        raise GanforgeError(f"--seed must be in [0, 2^63), got {seed}")
    if steps < 1 or restarts < 1 or batch_size < 1:
        raise GanforgeError("steps, restarts and batch_size must be at least 1")
    if model.training:
        raise GanforgeError(
            "put the model in eval mode first (model.eval()): dropout or "
            "batch norm in training mode would make the attacks noisy"
        )
    start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    width = box[1] - box[0]
    large = width if norm == "linf" else width * float(x[0].numel()) ** 0.5
    clean = torch.zeros(len(x), dtype=torch.bool)
    robust = {a: torch.zeros(len(eps), len(x), dtype=torch.bool) for a in ATTACKS}
    large_ok = torch.zeros(len(x), dtype=torch.bool)
    zero_grad = torch.zeros(len(x), dtype=torch.bool)
    work = [(i, j) for i in range(0, len(x), batch_size) for j in range(len(eps))]
    bar = tqdm(
        total=len(work) * len(ATTACKS) + len(range(0, len(x), batch_size)),
        desc="attacking",
        disable=not progress,
    )
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        ok = _correct(model, xb, yb)
        clean[i : i + len(xb)] = ok.cpu()
        _, grad = _loss_grad(model, xb, yb, targeted=False)
        zero_grad[i : i + len(xb)] = (grad.flatten(1).abs().amax(1) == 0).cpu()
        if i < LARGE_EPS_IMAGES:  # a sanity check: a few images and steps suffice
            adv = pgd(model, xb, yb, large, norm, steps=max(10, steps // 5), box=box, generator=g)
            large_ok[i : i + len(xb)] = (ok & _correct(model, adv, yb)).cpu()
        bar.update()
        for j, e in enumerate(eps):
            for a in ATTACKS:
                adv = _attack(a, model, xb, yb, e, norm, steps, restarts, box, g)
                robust[a][j, i : i + len(xb)] = (ok & _correct(model, adv, yb)).cpu()
                bar.update()
    bar.close()
    accuracy = {a: [float(r.float().mean()) for r in robust[a]] for a in ATTACKS}
    worst = torch.stack([robust[a] for a in ATTACKS]).all(0)
    worst_case = [float(r.float().mean()) for r in worst]
    report = RobustnessReport(
        norm=norm,
        eps=eps,
        steps=steps,
        restarts=restarts,
        n=len(x),
        clean_accuracy=float(clean.float().mean()),
        accuracy=accuracy,
        worst_case=worst_case,
        large_eps=large,
        large_eps_accuracy=float(large_ok[: min(len(x), LARGE_EPS_IMAGES)].float().mean()),
        zero_gradient_fraction=float(zero_grad.float().mean()),
    )
    report.checks = masking_checks(report)
    report.seconds = time.perf_counter() - start
    return report


def masking_checks(r: RobustnessReport) -> list[Check]:
    """The four sanity checks of a robustness evaluation (see the module's docstring).
    Differences within half a point, or two images on small sets, are not counted."""
    tol = max(TOLERANCE, 2.0 / max(1, r.n))
    rises = [
        (a, b, wa, wb)
        for a, b, wa, wb in zip(r.eps, r.eps[1:], r.worst_case, r.worst_case[1:], strict=False)
        if wb > wa + tol
    ]
    falls = Check(
        "accuracy falls as epsilon grows",
        not rises,
        "worst case never rises" if not rises else "; ".join(_rise(*t) for t in rises),
    )
    zero = Check(
        f"about 0 at epsilon {r.large_eps:.3g} (the whole box)",
        r.large_eps_accuracy <= NEAR_ZERO,
        f"PGD leaves {100 * r.large_eps_accuracy:.1f}% correct "
        f"(at most {100 * NEAR_ZERO:g}% expected)",
    )
    order = [
        ("pgd", "pgd-weak"),
        ("pgd-weak", "one-step"),
        *((attack, "noise") for attack in ("one-step", "pgd-weak", "pgd")),
    ]
    worse = [
        f"{strong} {100 * r.accuracy[strong][j]:.1f}% > {weak} {100 * r.accuracy[weak][j]:.1f}% "
        f"at {e:g}"
        for strong, weak in order
        for j, e in enumerate(r.eps)
        if r.accuracy[strong][j] > r.accuracy[weak][j] + tol
    ]
    stronger = Check(
        "stronger attacks do no worse",
        not worse,
        "PGD <= weak PGD <= one step <= noise at every epsilon" if not worse else "; ".join(worse),
    )
    grads = Check(
        "input gradients are non-zero",
        r.zero_gradient_fraction <= 0.01,
        f"{100 * r.zero_gradient_fraction:.1f}% of examples have an all-zero loss gradient",
    )
    return [falls, zero, stronger, grads]


def _rise(a: float, b: float, wa: float, wb: float) -> str:
    return f"{100 * wa:.1f}% at {a:g} < {100 * wb:.1f}% at {b:g}"


def save_report(report: RobustnessReport, out: str | Path) -> None:
    """``robustness.json`` and ``robustness.png`` (accuracy against epsilon) in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "robustness.json", json.dumps(report.to_dict(), indent=2).encode())
    plot_accuracy(report, out / "robustness.png")


def plot_accuracy(report: RobustnessReport, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ganforge.viz.plots import save_png

    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"noise": ":", "one-step": "--", "pgd-weak": "-.", "pgd": "-"}
    for a in ATTACKS:
        ax.plot(
            report.eps, [100 * v for v in report.accuracy[a]], styles[a], marker="o", ms=3, label=a
        )
    ax.plot(report.eps, [100 * v for v in report.worst_case], "k-", lw=2.5, label="worst case")
    ax.set_xlabel(f"epsilon ({report.norm})")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    title = f"robust accuracy, {report.n} images"
    if report.masking_suspected:
        title += " (gradient masking suspected!)"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)
