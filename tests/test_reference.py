"""The committed reference MNIST network: checksum, shapes, accuracy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ganforge.data import load_mnist
from ganforge.errors import GanforgeError
from ganforge.metrics.reference import (
    FEATURE_DIM,
    WEIGHTS,
    MnistNet,
    accuracy,
    load_reference,
    train_reference,
)

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def test_reference_weights_load_and_give_features_and_logits():
    net = load_reference()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert net.features(x).shape == (5, FEATURE_DIM)
    assert net(x).shape == (5, 10)
    assert not net.training  # eval mode: dropout off, batch-norm running statistics


@pytest.mark.skipif(not MNIST_DIR.exists(), reason="MNIST files not beside the checkout")
def test_reference_network_reaches_the_required_test_accuracy():
    test = load_mnist(MNIST_DIR, "test", download=False)
    assert accuracy(load_reference(), test.images, test.labels) >= 0.993


def test_weights_with_a_wrong_checksum_or_missing_are_refused(tmp_path: Path):
    tampered = tmp_path / "w.pt"
    data = bytearray(WEIGHTS.read_bytes())
    data[-100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(GanforgeError, match="checksum"):
        load_reference(tampered)
    with pytest.raises(GanforgeError, match="missing"):
        load_reference(tmp_path / "absent.pt")


def test_training_runs_from_uint8_images_and_learns_something():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (1280,), generator=g)
    # A toy set where the class is the position of a bright square: learnable in a few steps.
    images = torch.zeros(1280, 1, 28, 28, dtype=torch.uint8)
    for c in range(10):
        y, x = 3 + 13 * (c // 5), 1 + 5 * (c % 5)
        images[labels == c, :, y : y + 8, x : x + 4] = 255
    net = train_reference(images, labels, epochs=4, progress=False)
    assert isinstance(net, MnistNet) and not net.training
    assert accuracy(net, images, labels) > 0.5
