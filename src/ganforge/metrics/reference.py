"""The reference MNIST network whose features and class probabilities the metrics use.

Inception-v3 weights cannot be assumed (no download here, and MNIST papers use a domain
classifier anyway), so ganforge ships a small convnet trained on MNIST train by
:func:`train_reference` with a fixed seed: 99.41% test accuracy, 98,554 parameters, about a
minute on 2 CPU cores. Its weights are committed beside this file with their SHA-256 and
checked on every load.

Regenerate them with ``python -m ganforge.metrics.reference --data-dir DIR``.

Input: float32 NCHW (N, 1, 28, 28) in [-1, 1]. Output of :meth:`MnistNet.features`:
(N, 128) penultimate activations; of ``forward``: (N, 10) logits.
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes

WEIGHTS = Path(__file__).with_name("weights") / "mnist_reference.pt"
SHA256 = "2ed6829a7a4bff45edfa378487bacc6c0a20a163dfc234a7401984adab2feebc"
FEATURE_DIM = 128


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class MnistNet(nn.Module):
    """Three conv-BN-ReLU-pool stages (16, 32, 64 channels), a 128-unit layer, 10 logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_block(1, width), nn.MaxPool2d(2),
            *_block(width, 2 * width), nn.MaxPool2d(2),
            *_block(2 * width, 4 * width), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * width * 9, FEATURE_DIM), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.body(x)))


def train_reference(
    images: Tensor, labels: Tensor, epochs: int = 3, seed: int = 0, progress: bool = True
) -> MnistNet:
    """Train :class:`MnistNet` on uint8 (N, 1, 28, 28) ``images``: Adam with a one-cycle
    schedule, batch 128, random shifts of up to 2 pixels."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = MnistNet()
    x_all = images.float() / 127.5 - 1
    per_epoch = len(images) // 128
    steps = epochs * per_epoch
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for step in tqdm(range(steps), desc="reference net", unit="step", disable=not progress):
        if step % per_epoch == 0:
            perm = torch.randperm(len(images), generator=g)
        index = perm[(step % per_epoch) * 128 :][:128]
        dy, dx = torch.randint(-2, 3, (2,), generator=g).tolist()
        x = torch.roll(x_all[index], (dy, dx), (2, 3))
        loss = F.cross_entropy(net(x), labels[index])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    return net.eval()


def load_reference(path: str | Path = WEIGHTS, sha256: str | None = SHA256) -> MnistNet:
    """The reference network in eval mode, its weights checked against ``sha256``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError:
        raise GanforgeError(f"reference MNIST weights {path} are missing") from None
    digest = hashlib.sha256(raw).hexdigest()
    if sha256 is not None and digest != sha256:
        raise GanforgeError(f"reference MNIST weights {path} fail their checksum ({digest[:12]})")
    net = MnistNet()
    net.load_state_dict(torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True))
    return net.eval().requires_grad_(False)


@torch.inference_mode()
def accuracy(net: MnistNet, images: Tensor, labels: Tensor) -> float:
    logits = torch.cat(
        [net(images[i : i + 1000].float() / 127.5 - 1) for i in range(0, len(images), 1000)]
    )
    return (logits.argmax(1) == labels).double().mean().item()


def main() -> None:
    from ganforge.data import load_mnist

    parser = argparse.ArgumentParser(description="Train the reference MNIST network.")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default=str(WEIGHTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train = load_mnist(args.data_dir, "train", download=False)
    test = load_mnist(args.data_dir, "test", download=False)
    net = train_reference(train.images, train.labels, seed=args.seed)
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"test accuracy {accuracy(net, test.images, test.labels):.4f}")
    print(f"sha256 {hashlib.sha256(buffer.getvalue()).hexdigest()}  {args.out}")


if __name__ == "__main__":
    main()
