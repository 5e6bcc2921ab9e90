"""Mode coverage: the Stacked MNIST builder, the 1000-mode metric and the 2-D mixtures."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.data import ImageSet, load_dataset, load_mnist, stack_digits, to_float
from ganforge.data.mixtures import MIXTURES
from ganforge.errors import GanforgeError
from ganforge.metrics.modes import (
    histogram_kl,
    mixture_coverage,
    stacked_digits,
    stacked_mode_coverage,
)
from ganforge.metrics.reference import load_reference
from tests.conftest import MNIST_DIR

needs_mnist = pytest.mark.skipif(not MNIST_DIR.exists(), reason="MNIST not beside the checkout")


def _coded_digits(per_class: int = 5) -> ImageSet:
    """Digit images whose pixels spell their label (value 20 * label + image number)."""
    labels = torch.arange(10).repeat_interleave(per_class)
    values = labels * 20 + torch.arange(len(labels)) % per_class
    images = values.view(-1, 1, 1, 1).expand(-1, 1, 4, 4).to(torch.uint8).contiguous()
    return ImageSet(images, labels, [str(i) for i in range(10)], "coded")


def test_a_stacked_label_is_its_three_digits_read_as_a_number():
    stacked = stack_digits(_coded_digits(), 2000, seed=3)
    assert stacked.images.shape == (2000, 3, 4, 4) and stacked.images.dtype == torch.uint8
    digits = stacked.images[:, :, 0, 0].long() // 20  # each channel's own label
    assert torch.equal(stacked.labels, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    assert stacked.num_classes == 1000 and stacked.class_names[7] == "007"


def test_stacked_channels_are_drawn_independently():
    stacked = stack_digits(_coded_digits(), 100_000, seed=0)
    images = stacked.images[:, :, 0, 0].long()
    digits = images // 20
    # Every pair of channels: the joint histogram is the product of the marginals.
    for a, b in ((0, 1), (0, 2), (1, 2)):
        joint = torch.bincount(digits[:, a] * 10 + digits[:, b], minlength=100).double()
        joint /= joint.sum()
        assert (joint - 0.01).abs().max() < 0.002
    # Not the same source image in every channel: the within-class index differs too.
    assert (images[:, 0] != images[:, 1]).float().mean() > 0.85
    # The seed fixes the set (a resumed run sees the same images); another seed changes it.
    assert torch.equal(
        stack_digits(_coded_digits(), 50, 4).images, stack_digits(_coded_digits(), 50, 4).images
    )
    assert not torch.equal(
        stack_digits(_coded_digits(), 50, 4).images, stack_digits(_coded_digits(), 50, 5).images
    )


def test_stacking_needs_labelled_gray_digits():
    gray = _coded_digits()
    with pytest.raises(GanforgeError, match="labelled one-channel"):
        stack_digits(ImageSet(gray.images), 10)
    with pytest.raises(GanforgeError, match="at least one"):
        stack_digits(gray, 0)


@needs_mnist
def test_stacked_mnist_dataset_holds_all_1000_modes():
    data = load_dataset("stacked-mnist", str(MNIST_DIR), download=False)
    assert data.images.shape == (128_000, 3, 28, 28)
    counts = torch.bincount(data.labels, minlength=1000)
    assert (counts > 0).all() and counts.min() >= 60  # about 128 each


def test_kl_to_uniform_matches_closed_forms():
    assert histogram_kl(torch.full((1000,), 7)) == pytest.approx(0.0, abs=1e-12)
    one = torch.zeros(1000, dtype=torch.long)
    one[3] = 26
    assert histogram_kl(one) == pytest.approx(math.log(1000))
    ten = torch.zeros(1000, dtype=torch.long)
    ten[:10] = 5
    assert histogram_kl(ten) == pytest.approx(math.log(100))


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    return load_reference()


@needs_mnist
def test_real_stacked_images_cover_all_modes_with_kl_near_zero(reference):
    test = load_mnist(MNIST_DIR, "test", download=False)
    stacked = stack_digits(test, 26_000, seed=1)
    result = stacked_mode_coverage(reference, to_float(stacked.images))
    assert result.modes == 1000 and result.samples == 26_000
    # A finite sample of a uniform histogram: expected KL about 999 / (2 * 26000) = 0.019.
    assert result.kl < 0.04
    read = stacked_digits(reference, to_float(stacked.images[:2000]))
    truth = torch.stack([stacked.labels[:2000] // 100, stacked.labels[:2000] // 10 % 10,
                         stacked.labels[:2000] % 10], dim=1)  # fmt: skip
    assert (read == truth).all(dim=1).float().mean() > 0.97  # the classifier reads each digit


@needs_mnist
def test_a_generator_restricted_to_ten_modes_is_reported_as_ten(reference):
    test = load_mnist(MNIST_DIR, "test", download=False)
    # Ten triples (d, d, d): every sample one of ten modes, as a collapsed generator would be.
    pick = torch.cat([torch.nonzero(test.labels == d)[:100, 0] for d in range(10)])
    triple = test.images[pick].expand(-1, 3, -1, -1)
    result = stacked_mode_coverage(reference, to_float(triple))
    assert result.modes == pytest.approx(10, abs=2)  # a few misread digits may add modes
    assert result.kl > math.log(1000 / 12)


def test_stacked_metric_rejects_gray_images(reference):
    with pytest.raises(GanforgeError, match=r"\(N, 3, H, W\)"):
        stacked_mode_coverage(reference, torch.zeros(4, 1, 28, 28))


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_samples_of_the_mixture_itself_capture_every_mode(name: str):
    mixture = MIXTURES[name]
    points = mixture.sample(20_000, torch.Generator().manual_seed(0))
    result = mixture_coverage(points, mixture.centres, mixture.std)
    assert result.modes == result.total == len(mixture.centres)
    # Within 3 std of a 2-D Gaussian's centre: 1 - exp(-9/2) = 98.9% of its mass.
    assert result.high_quality == pytest.approx(1 - math.exp(-4.5), abs=0.005)
    assert result.kl < 0.01


def test_a_collapsed_or_scattered_mixture_is_reported_as_such():
    grid = MIXTURES["grid"]
    collapsed = grid.centres[:1] + 0.01 * torch.randn(500, 2)
    result = mixture_coverage(collapsed, grid.centres, grid.std)
    assert (result.modes, result.high_quality) == (1, 1.0)
    assert result.kl == pytest.approx(math.log(25))
    scattered = torch.rand(2500, 2) * 10 - 5
    far = mixture_coverage(scattered, grid.centres, grid.std)
    assert far.high_quality < 0.05


def test_the_points_game_learns_the_ring_on_the_engine():
    from ganforge.train.points import PointsConfig, train_points

    ring = MIXTURES["ring"]
    recipe = train_points(ring, PointsConfig(steps=1000, seed=0))
    points = recipe.sample(2500, seed=1)
    assert points.shape == (2500, 2)
    result = mixture_coverage(points, ring.centres, ring.std)
    assert result.modes == 8 and result.high_quality > 0.15  # 23% here, 58% after 3,000 steps
    again = train_points(ring, PointsConfig(steps=20, seed=3)).sample(5, seed=1)
    torch.testing.assert_close(
        again, train_points(ring, PointsConfig(steps=20, seed=3)).sample(5, seed=1)
    )


def test_evaluate_stacked_reads_each_channel_once_for_modes_and_confidence(small_real):
    from ganforge.metrics.evaluate import evaluate_stacked

    # The floor is real stacked test digits drawn with the same seed: the very same images.
    images = to_float(stack_digits(small_real.test, 3000, seed=1).images)
    result, floor = evaluate_stacked(images, small_real)
    assert result == floor
    assert result["num_images"] == 3000 and result["modes"] > 900  # 3,000 draws of 1000
    assert result["confident_fraction"] > 0.9  # all three digits of real images
    direct = stacked_mode_coverage(small_real.net, images)
    assert (result["modes"], result["kl"]) == (direct.modes, direct.kl)
    with pytest.raises(GanforgeError, match=r"\(N, 3, H, W\)"):
        evaluate_stacked(images[:, :1], small_real)
