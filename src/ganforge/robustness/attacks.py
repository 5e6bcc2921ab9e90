"""Gradient attacks on any classifier: FGSM (Goodfellow et al., 2014) and PGD under L-inf
and L2 with random starts and restarts (Madry et al., 2017).

Every attack takes ``model`` (inputs -> logits), a batch ``x`` inside the input box
``box = (low, high)`` (default [0, 1], the scale on which MNIST's epsilon = 0.3 is
defined), and labels ``y``: the true labels, or the targets when ``targeted=True``. It
returns adversarial inputs of ``x``'s shape, inside both the epsilon-ball around ``x`` and
the box. The model's mode and its parameters' gradients are left as they were; put it in
``eval()`` first, as an attacker of a deployed model would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganforge.errors import GanforgeError

NORMS = ("linf", "l2")
Box = tuple[float, float]


def _check(x: Tensor, y: Tensor, eps: float, box: Box, norm: str = "linf") -> None:
    if norm not in NORMS:
        raise GanforgeError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    if eps < 0:
        raise GanforgeError(f"epsilon must be >= 0, got {eps}")
    if box[0] >= box[1]:
        raise GanforgeError(f"the input box must have low < high, got {box}")
    if len(x) != len(y):
        raise GanforgeError(f"{len(x)} inputs but {len(y)} labels")
    if len(x) and (float(x.min()) < box[0] - 1e-6 or float(x.max()) > box[1] + 1e-6):
        raise GanforgeError(
            f"inputs span [{float(x.min()):.3g}, {float(x.max()):.3g}], outside the box {box}"
        )


def _loss_grad(model: nn.Module, x: Tensor, y: Tensor, targeted: bool) -> tuple[Tensor, Tensor]:
    """Per-example loss to climb and its gradient with respect to ``x`` (parameters get none).

    Untargeted attacks climb the cross-entropy of the true label; targeted ones climb the
    negative cross-entropy of the target."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y, reduction="none")
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def _flat_norm(t: Tensor) -> Tensor:
    """L2 norm of each example, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def _project(delta: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _flat_norm(delta)).clamp(max=1.0)


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A uniform point of the epsilon-ball (L-inf: the cube; L2: uniform in volume), drawn
    on ``generator``'s device (or ``x``'s when there is none)."""
    device = generator.device if generator is not None else x.device

    def draw(fn, *shape: int) -> Tensor:
        return fn(shape, generator=generator, device=device).to(x.device)

    if norm == "linf":
        return (2 * draw(torch.rand, *x.shape) - 1) * eps
    direction = draw(torch.randn, *x.shape)
    direction = direction / _flat_norm(direction)
    radius = draw(torch.rand, len(x)) ** (1.0 / x[0].numel())
    return direction * (eps * radius).view(-1, *([1] * (x.dim() - 1)))


def _descend(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str,
    steps: int,
    alpha: float,
    random_start: bool,
    box: Box,
    targeted: bool,
    generator: torch.Generator | None,
) -> Tensor:
    """One PGD run: ``steps`` projected steps of size ``alpha`` from a random point of the
    ball (or from ``x``)."""
    delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
    adv = (x + delta).clamp(*box)
    for _ in range(steps):
        _, grad = _loss_grad(model, adv, y, targeted)
        step = grad.sign() if norm == "linf" else grad / _flat_norm(grad)
        adv = (x + _project(adv + alpha * step - x, eps, norm)).clamp(*box)
    return adv.detach()


def fgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    box: Box = (0.0, 1.0),
    targeted: bool = False,
) -> Tensor:
    """The fast gradient sign method: one step ``x + eps * sign(grad)`` (L-inf), clipped to
    the box."""
    _check(x, y, eps, box)
    return _fgsm(model, x, y, eps, box, targeted)


def _fgsm(model: nn.Module, x: Tensor, y: Tensor, eps: float, box: Box, targeted: bool) -> Tensor:
    _, grad = _loss_grad(model, x, y, targeted)
    return (x + eps * grad.sign()).clamp(*box).detach()


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    box: Box = (0.0, 1.0),
    targeted: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Projected gradient descent on the loss, ``restarts`` times from random points of the
    ball (or once from ``x`` when ``random_start`` is False).

    L-inf steps follow the gradient's sign, L2 steps its direction; ``step_size`` defaults
    to ``2.5 * eps / steps`` (Madry et al.), so even a start on the ball's edge can cross it.
    Per example, the first restart that succeeds (misclassifies, or hits the target) is
    kept, and later restarts skip it; otherwise the one with the highest loss is kept.
    ``generator`` (optional, for reproducible starts) may live on any device."""
    _check(x, y, eps, box, norm)
    if steps < 1 or restarts < 1:
        raise GanforgeError(f"steps and restarts must be at least 1, got {steps} and {restarts}")
    if step_size is not None and step_size <= 0:
        raise GanforgeError(f"the step size must be > 0, got {step_size}")
    if restarts > 1 and not random_start:
        raise GanforgeError("restarts need random starts (without one, every restart is the same)")
    alpha = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    if restarts == 1:  # no bookkeeping: the one run is the answer (training's hot path)
        return _descend(
            model, x, y, eps, norm, steps, alpha, random_start, box, targeted, generator
        )
    best = x.clone()
    best_loss = torch.full((len(x),), -float("inf"), device=x.device)
    done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    shape = (-1, *([1] * (x.dim() - 1)))
    for restart in range(restarts):
        # Later restarts attack only the examples no restart has broken yet.
        todo = torch.arange(len(x), device=x.device) if restart == 0 else (~done).nonzero()[:, 0]
        xs, ys = x[todo], y[todo]
        adv = _descend(model, xs, ys, eps, norm, steps, alpha, True, box, targeted, generator)
        with torch.no_grad():
            logits = model(adv)
            loss = F.cross_entropy(logits, ys, reduction="none")
            loss = -loss if targeted else loss
            hit = logits.argmax(1) == ys if targeted else logits.argmax(1) != ys
            # Keep this restart where it succeeds, or where it beats the best loss so far.
            take = hit | (loss > best_loss[todo])
            best[todo] = torch.where(take.view(shape), adv, best[todo])
            best_loss[todo] = torch.where(take, loss, best_loss[todo])
            done[todo] |= hit
        if restart + 1 < restarts and bool(done.all()):
            break
    return best.detach()
