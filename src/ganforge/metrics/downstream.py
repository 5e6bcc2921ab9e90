"""The utility of labelled synthetic data: train a fixed classifier on it alone, test it on
the real MNIST test set (the protocol of the DP generative-model papers: DP-MERF, GS-WGAN,
DPDM, Bie et al. 2023), beside FID on the reference features and class coverage.

The classifier is the one those papers' code trains: two 3x3 convolutions (32, 64), max
pooling, dropout 0.25, 128 units, dropout 0.5, 10 logits; Adam 1e-3, batch 64, 10 epochs;
the last 5,000 synthetic images are held out to pick the epoch, whose real test accuracy is
reported. Inputs are uint8 NCHW images (N, 1, 28, 28) and int64 labels (N,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ganforge.data import to_float
from ganforge.errors import GanforgeError


class DownstreamNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
            nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, num_classes),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass
class DownstreamResult:
    accuracy: float  # on the real test set, at the epoch picked on held-out synthetic data
    epoch: int  # 1-based
    heldout_accuracy: float
    curve: list[dict[str, float]]  # per epoch: heldout and test accuracy


@torch.no_grad()
def _accuracy(net: nn.Module, images: Tensor, labels: Tensor, batch: int = 2000) -> float:
    net.eval()
    right = sum(
        int((net(to_float(images[i : i + batch])).argmax(1) == labels[i : i + batch]).sum())
        for i in range(0, len(images), batch)
    )
    return right / max(1, len(images))


def check_inputs(images: Tensor, labels: Tensor, epochs: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise GanforgeError(
            f"the utility protocol takes uint8 images (N, 1, 28, 28), got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    if len(labels) != len(images):
        raise GanforgeError(f"{len(images)} images but {len(labels)} labels")
    if epochs < 1:
        raise GanforgeError(f"epochs must be at least 1, got {epochs}")


def downstream_accuracy(
    images: Tensor,
    labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    epochs: int = 10,
    heldout: int = 5000,
    batch: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> DownstreamResult:
    """Train :class:`DownstreamNet` on ``images``/``labels`` (uint8 NCHW, int64), all but the
    last ``heldout``, and report real test accuracy at the best held-out epoch."""
    check_inputs(images, labels, epochs)
    heldout = min(heldout, len(images) // 5)
    if len(images) - heldout < batch:
        raise GanforgeError(f"the utility protocol needs at least {batch + 1} images")
    labels = labels.long()
    train_x, train_y = images[: len(images) - heldout], labels[: len(images) - heldout]
    val_x, val_y = images[len(images) - heldout :], labels[len(images) - heldout :]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # weights and dropout
    net = DownstreamNet(int(max(labels.max(), test_labels.max())) + 1)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    curve: list[dict[str, float]] = []
    best = (-1.0, 0, 0.0)
    bar = tqdm(total=epochs, desc="downstream", unit="epoch", disable=not progress)
    for epoch in range(1, epochs + 1):
        net.train()
        order = torch.randperm(len(train_x), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            loss = F.cross_entropy(net(to_float(train_x[idx])), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = _accuracy(net, val_x, val_y) if heldout else float("nan")
        test = _accuracy(net, test_images, test_labels)
        curve.append({"epoch": epoch, "heldout": val, "test": test})
        if heldout == 0 or val > best[0]:
            best = (val, epoch, test)
        bar.update(1)
        bar.set_postfix(test=f"{test:.4f}")
    bar.close()
    return DownstreamResult(best[2], best[1], best[0], curve)


def utility(
    images: Tensor,
    labels: Tensor,
    data_dir: str | None = None,
    epochs: int = 10,
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole protocol on labelled synthetic MNIST (uint8 NCHW, int64): downstream test
    accuracy, FID and KID on the reference features (against the real test set), class
    coverage, and how often the reference network reads each image as its own label."""
    from ganforge.metrics.evaluate import evaluate_images, load_real

    check_inputs(images, labels, epochs)  # before the real data is read
    real = load_real(data_dir, download=download)
    result = downstream_accuracy(
        images, labels, real.test.images, real.test.labels, epochs, seed=seed, progress=progress
    )
    metrics = evaluate_images(
        to_float(images), real, with_parzen=False, with_memorization=False, kid_subsets=10,
        labels=labels,
    )  # fmt: skip
    return {
        "downstream_accuracy": result.accuracy,
        "downstream_epoch": result.epoch,
        "downstream_curve": result.curve,
        "fid": float(metrics["fid"]),
        "kid": float(metrics["kid"]),
        "classes_covered": int(metrics["classes_covered"]),
        "label_agreement": metrics["label_agreement"],
        "num_images": len(images),
    }
