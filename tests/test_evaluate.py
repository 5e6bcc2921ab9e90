"""The evaluation pipeline on small real subsets: real images score near the floor, noise
and a one-digit generator do not, and bad sources give clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganforge.data import load_mnist, to_float
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import (
    RealData,
    evaluate_images,
    format_table,
    load_images,
    real_floor,
)

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
pytestmark = pytest.mark.skipif(
    not MNIST_DIR.exists(), reason="MNIST files not beside the checkout"
)


def test_held_out_real_images_score_like_the_floor_and_noise_does_not(small_real: RealData):
    test_more = load_mnist(MNIST_DIR, "test", download=False)
    real_images = to_float(test_more.images[5000:5600])
    real = evaluate_images(real_images, small_real)
    floor = real_floor(small_real)
    noise = evaluate_images(torch.rand(600, 1, 28, 28) * 2 - 1, small_real)
    assert real["fid"] < 3 * floor["fid"] + 1 < noise["fid"]
    assert real["precision"] > 0.7 and noise["precision"] < 0.1
    assert real["classes_covered"] == 10 and real["confident_fraction"] > 0.9
    assert real["parzen"] > noise["parzen"] + 50
    assert real["memorized_fraction"] < 0.05
    table = format_table(real, floor)
    assert "FID" in table and "Parzen" in table and len(table.splitlines()) == 12


def test_a_generator_of_training_ones_is_flagged_as_collapsed_and_copying(small_real: RealData):
    ones = to_float(small_real.train.images[small_real.train.labels == 1][:300])
    result = evaluate_images(ones, small_real, with_parzen=False)
    assert result["classes_covered"] == 1
    assert result["classifier_score"] < 1.5
    assert result["recall"] < 0.3
    assert result["memorized_fraction"] == 1.0  # each is a training image


def test_wrong_shapes_and_bad_sources_give_clear_errors(tmp_path: Path, small_real: RealData):
    with pytest.raises(GanforgeError, match="28, 28"):
        evaluate_images(torch.zeros(10, 3, 32, 32), small_real)
    with pytest.raises(GanforgeError, match="does not exist"):
        load_images(tmp_path / "absent.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((4, 28, 28, 1), dtype=np.float32))
    with pytest.raises(GanforgeError, match="uint8"):
        load_images(bad)
    good = tmp_path / "good.npz"
    np.savez(good, images=np.full((4, 28, 28, 1), 255, dtype=np.uint8))
    images = load_images(good)
    assert images.shape == (4, 1, 28, 28) and images.min() == 1.0
