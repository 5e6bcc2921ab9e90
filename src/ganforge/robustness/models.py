"""Image classifiers to attack and to train robustly, registered by name, and their files.

Every network maps float (N, C, H, W) images in the box [0, 1] to (N, K) logits. The box is
[0, 1] rather than ganforge's usual [-1, 1] because the published epsilons (0.25 in
Goodfellow et al., 2014; 0.3 in Madry et al., 2017) are defined on that scale.

A saved classifier is one ``torch.save`` dict of tensors and plain values (format
``ganforge-robust-classifier-1``), read back with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ganforge.errors import GanforgeError
from ganforge.io.rundir import require_kind
from ganforge.io.safe import load_safely, save_state
from ganforge.registry import Registry

FORMAT = "ganforge-robust-classifier-1"
MODEL_FILE = "model.pt"
Shape = tuple[int, int, int]
CLASSIFIERS: Registry[Callable[[Shape, int], nn.Module]] = Registry("classifier network")


@CLASSIFIERS.register("softmax")
def softmax_regression(shape: Shape, num_classes: int) -> nn.Module:
    """Multinomial logistic regression on the pixels (Goodfellow et al.'s shallow model)."""
    c, h, w = shape
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, num_classes))


@CLASSIFIERS.register("mlp")
def mlp(shape: Shape, num_classes: int) -> nn.Module:
    """Two hidden ReLU layers of 800 units: a standard fully connected network (the 2014
    paper's was maxout; ReLU is what users train today)."""
    c, h, w = shape
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(c * h * w, 800),
        nn.ReLU(),
        nn.Linear(800, 800),
        nn.ReLU(),
        nn.Linear(800, num_classes),
    )


def _conv_net(shape: Shape, num_classes: int, c1: int, c2: int, hidden: int, k: int) -> nn.Module:
    c, h, w = shape
    if h % 4 or w % 4:
        raise GanforgeError(f"the convnets need a height and width divisible by 4, got {h}x{w}")
    return nn.Sequential(
        nn.Conv2d(c, c1, k, padding=k // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, k, padding=k // 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (h // 4) * (w // 4), hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@CLASSIFIERS.register("convnet")
def convnet(shape: Shape, num_classes: int) -> nn.Module:
    """Madry et al.'s MNIST network: 5x5 convolutions of 32 and 64 channels, each followed
    by 2x2 max-pooling, then 1024 hidden units."""
    return _conv_net(shape, num_classes, 32, 64, 1024, 5)


@CLASSIFIERS.register("convnet-small")
def convnet_small(shape: Shape, num_classes: int) -> nn.Module:
    """The same layout at about a fifth of the cost: 3x3 convolutions of 16 and 32
    channels, 256 hidden units."""
    return _conv_net(shape, num_classes, 16, 32, 256, 3)


def build_classifier(network: str, shape: Shape, num_classes: int) -> nn.Module:
    return CLASSIFIERS.get(network)(tuple(shape), num_classes)


def save_classifier(path: str | Path, model: nn.Module, info: dict[str, Any]) -> None:
    """Write ``model``'s weights with ``info`` (network, shape, num_classes, box, ...)."""
    for key in ("network", "shape", "num_classes"):
        if key not in info:
            raise GanforgeError(f"a saved classifier needs {key!r} in its info")
    state = {
        "format": FORMAT,
        "box": [0.0, 1.0],
        **info,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_state(path, state)


def classifier_file(path: str | Path) -> Path:
    """A classifier file, or a run folder of ``ganforge robust-train`` (its ``model.pt``)."""
    path = Path(path)
    if path.is_dir():
        require_kind(path, "robust")
        path = path / MODEL_FILE
    if not path.is_file():
        raise GanforgeError(f"classifier file {path} does not exist")
    return path


def load_classifier(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The saved network in eval mode on the CPU, and its info (everything but weights)."""
    file = classifier_file(path)
    state = load_safely(file, FORMAT, "ganforge robust classifier")
    try:
        model = build_classifier(state["network"], state["shape"], state["num_classes"])
        model.load_state_dict(state["state_dict"])
    except (KeyError, RuntimeError, TypeError) as err:
        raise GanforgeError(f"{file} is an incomplete robust classifier ({err})") from None
    info = {k: v for k, v in state.items() if k not in ("format", "state_dict")}
    return model.eval(), info
