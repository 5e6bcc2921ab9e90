"""Every metric for a set of generated MNIST images, each beside its real-data floor.

The floor is the same metric with real images in place of samples: 10,000 training images
(not used elsewhere in the comparison) stand in for the generator, measured against the test
set. A generator cannot be expected to beat it.

Images enter as float32 NCHW (N, 1, 28, 28) in [-1, 1]. Parzen uses pixels scaled to [0, 1],
as the 2014 paper did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganforge.data import ImageSet, load_image_folder, load_mnist, to_float
from ganforge.errors import GanforgeError
from ganforge.metrics.classes import class_coverage, classifier_score, confident_fraction
from ganforge.metrics.frechet import fid
from ganforge.metrics.kid import kid
from ganforge.metrics.memorization import memorization, nearest_distances
from ganforge.metrics.parzen import choose_sigma, parzen
from ganforge.metrics.precision_recall import kth_radii, precision_recall
from ganforge.metrics.reference import MnistNet, load_reference


@torch.inference_mode()
def embed(net: nn.Module, images: Tensor, batch: int = 1000) -> tuple[Tensor, Tensor]:
    """Features and class probabilities of float [-1, 1] images, for a network with
    ``features`` and ``head`` (the reference net: (N, 128), (N, 10); Inception: 2048, 1008)."""
    feats, probs = [], []
    for i in range(0, len(images), batch):
        h = net.features(images[i : i + batch].float())
        feats.append(h)
        probs.append(net.head(h).softmax(1))
    return torch.cat(feats), torch.cat(probs)


@dataclass
class RealData:
    """The real side of every comparison, computed once and reused across evaluations."""

    train: ImageSet  # all 60,000: memorization looks for the nearest of them
    test: ImageSet
    stand_in: Tensor  # float [-1, 1] training images standing in for samples (the floor)
    validation: Tensor  # float [-1, 1] train[50000:51000], for choosing the Parzen sigma
    net: MnistNet
    test_feats: Tensor = field(init=False)
    test_pixels: Tensor = field(init=False)  # [0, 1], flattened, for Parzen

    def __post_init__(self) -> None:
        self.test_feats, _ = embed(self.net, to_float(self.test.images))
        self.test_pixels = self.test.images.flatten(1).double() / 255

    @cached_property
    def test_radii(self) -> Tensor:
        """k = 3 ball radii of the test features (the real manifold for precision)."""
        return kth_radii(self.test_feats)

    @cached_property
    def train_float(self) -> Tensor:
        """All training images as float [-1, 1], converted once for nearest-neighbour search."""
        return to_float(self.train.images)

    @cached_property
    def test_nn(self) -> Tensor:
        """Each test image's distance to its nearest training image (computed on first use)."""
        distances, _ = nearest_distances(to_float(self.test.images), self.train_float)
        return distances


def load_real(
    data_dir: str | Path | None = None, n: int = 10_000, download: bool = True
) -> RealData:
    train = load_mnist(data_dir, "train", download=download)
    test = load_mnist(data_dir, "test", download=download)
    n = min(n, 10_000)
    return RealData(
        train, test, to_float(train.images[:n]), to_float(train.images[50_000:51_000]),
        load_reference(),
    )  # fmt: skip


def evaluate_images(
    images: Tensor,
    real: RealData,
    with_parzen: bool = True,
    with_memorization: bool = True,
    kid_subsets: int = 100,
    labels: Tensor | None = None,
) -> dict[str, Any]:
    """All metrics of ``images`` (float NCHW in [-1, 1], shape (N, 1, 28, 28)); with the
    ``labels`` they were drawn for, also how often the reference network reads them so."""
    if images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise GanforgeError(
            f"MNIST metrics need images of shape (N, 1, 28, 28), got {tuple(images.shape)}"
        )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    feats, probs = embed(real.net, images)
    timings["features"] = time.perf_counter() - start
    out: dict[str, Any] = {"num_images": len(images)}

    def timed(name, fn):
        t = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - t
        return value

    out["fid"] = timed("fid", lambda: fid(feats.numpy(), real.test_feats.numpy()))
    kid_mean, kid_std = timed(
        "kid", lambda: kid(feats.numpy(), real.test_feats.numpy(), kid_subsets)
    )
    out["kid"], out["kid_std"] = kid_mean, kid_std
    out["precision"], out["recall"] = timed(
        "precision_recall",
        lambda: precision_recall(real.test_feats, feats, real_radii=real.test_radii),
    )
    out["classifier_score"] = classifier_score(probs)
    cov = class_coverage(probs)
    out["classes_covered"], out["mean_confidence"] = cov.covered, cov.mean_confidence
    out["class_histogram"] = cov.histogram
    out["confident_fraction"] = confident_fraction(probs)
    if labels is not None:
        out["label_agreement"] = float((probs.argmax(1) == labels).double().mean())
    if with_memorization:
        mem = timed(
            "memorization",
            lambda: memorization(images, real.train_float, test_distances=real.test_nn),
        )
        out["memorized_fraction"] = mem.fraction_copied
        out["median_nn_distance"] = mem.median_sample_distance
    if with_parzen:
        pixels = ((images.flatten(1).double() + 1) / 2).clamp(0, 1)
        validation = (real.validation.flatten(1).double() + 1) / 2
        sigma = choose_sigma(validation, pixels)
        result = timed("parzen", lambda: parzen(real.test_pixels, pixels, sigma=sigma))
        out["parzen"], out["parzen_se"], out["parzen_sigma"] = result.mean, result.std_error, sigma
    out["seconds"] = timings
    return out


def real_floor(real: RealData, with_parzen: bool = True) -> dict[str, Any]:
    """The metrics with real training images in place of samples."""
    floor = evaluate_images(real.stand_in, real, with_parzen, with_memorization=False)
    # The stand-ins are training images, their own nearest neighbours. The fair floor for
    # memorization is held-out images: 1% by construction.
    floor["memorized_fraction"] = 0.01
    floor["median_nn_distance"] = real.test_nn.median().item()
    return floor


ROWS = [  # key, label, how to read it
    ("modes", "Stacked MNIST modes covered", "1000 is all"),
    ("kl", "KL(mode histogram || uniform)", "lower; 0 only for infinite samples"),
    ("fid", "FID (reference MNIST features)", "lower is better"),
    ("kid", "KID", "lower is better"),
    ("precision", "precision (k=3)", "higher: samples look real"),
    ("recall", "recall (k=3)", "higher: covers the data"),
    ("classifier_score", "classifier score (IS form)", "higher, at most 10"),
    ("classes_covered", "classes with >= half their share", "10 is all"),
    ("confident_fraction", "samples with confidence >= 0.9", "higher (stacked: all 3 digits)"),
    ("mean_confidence", "mean confidence", "higher is better"),
    ("memorized_fraction", "closer to train than 1% of test", "~0.01 is healthy"),
    ("parzen", "Parzen log-likelihood (test)", "higher is better"),
    ("fid_inception", "FID (Inception-v3)", "lower is better"),
    ("kid_inception", "KID (Inception-v3)", "lower is better"),
    ("inception_score", "Inception Score", "higher is better"),
]


def format_table(result: dict[str, Any], floor: dict[str, Any]) -> str:
    lines = [f"{'metric':<34} {'samples':>12} {'real floor':>12}  note", "-" * 78]
    for key, label, note in ROWS:
        if key not in result:
            continue
        a, b = result[key], floor.get(key, float("nan"))
        if key == "parzen":
            cell_a = f"{a:.1f}±{result['parzen_se']:.1f}"
            cell_b = f"{b:.1f}±{floor['parzen_se']:.1f}"
        elif isinstance(a, int):
            cell_a, cell_b = f"{a}", f"{b}"
        else:
            cell_a, cell_b = f"{a:.4g}", f"{b:.4g}"
        lines.append(f"{label:<34} {cell_a:>12} {cell_b:>12}  {note}")
    return "\n".join(lines)


STACKED_SAMPLES = 26_000  # VEEGAN's, PacGAN's and R3GAN's count for Stacked MNIST
STACKED_SHAPE = (3, 28, 28)


def load_images(source: str | Path, n: int | None = None, seed: int = 0) -> Tensor:
    """Images to evaluate, float NCHW in [-1, 1]: from a run folder or checkpoint (``n``
    samples of its EMA generator: 10,000 by default, 26,000 for Stacked MNIST), an .npz
    (``images``: uint8 NHWC) or a folder of images."""
    from ganforge.sampling import load_generator, sample

    path = Path(source)
    if not path.exists():
        raise GanforgeError(f"{path} does not exist")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                array = data["images"]
        except (OSError, ValueError, KeyError) as err:
            raise GanforgeError(f"{path} is not an .npz with an 'images' array ({err})") from None
        if array.dtype != np.uint8 or array.ndim != 4:
            raise GanforgeError(
                f"{path}: 'images' must be uint8 NHWC, got {array.dtype} {array.shape}"
            )
        return to_float(torch.from_numpy(array).permute(0, 3, 1, 2).contiguous())
    if path.suffix == ".pt" or (path / "checkpoints").is_dir():
        generator = load_generator(path)
        if n is None:
            spec = generator.spec
            stacked = (spec.channels, spec.image_size, spec.image_size) == STACKED_SHAPE
            n = STACKED_SAMPLES if stacked else 10_000
        images, _ = sample(generator, n, seed)
        return images
    return to_float(load_image_folder(path, 28, 1).images)


def evaluate_stacked(images: Tensor, real: RealData, seed: int = 1) -> tuple[dict, dict]:
    """Stacked MNIST mode coverage of ``images`` (float (N, 3, 28, 28) in [-1, 1]) and the
    same for as many real stacked images, built from the test digits (the floor: a finite
    sample of a uniform histogram has a KL above 0, about 999 / (2N) nats)."""
    from ganforge.data.stacked import stack_digits
    from ganforge.metrics.modes import digits_coverage, stacked_probabilities

    def measure(x: Tensor) -> dict[str, Any]:
        probs = stacked_probabilities(real.net, x)  # one pass gives modes and confidence
        out: dict[str, Any] = digits_coverage(probs.argmax(2)).to_dict()
        out["confident_fraction"] = float((probs.amax(2) >= 0.9).all(dim=1).double().mean())
        out["num_images"] = len(x)
        return out

    result = measure(images)
    floor = to_float(stack_digits(real.test, len(images), seed).images)
    return result, measure(floor)


def evaluate(
    source: str | Path,
    data_dir: str | Path | None = None,
    n: int | None = None,
    with_parzen: bool = True,
    real: RealData | None = None,
    inception: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics of ``source`` (run folder, checkpoint, .npz or image folder) and the floor.

    Samples of a Stacked MNIST generator (3 x 28 x 28) get the mode-coverage protocol
    (:func:`evaluate_stacked`, 26,000 samples unless ``n`` says otherwise); MNIST samples
    every other metric (10,000 samples by default)."""
    images = load_images(source, n)
    if tuple(images.shape[1:]) == STACKED_SHAPE:
        return evaluate_stacked(images, real or load_real(data_dir))
    model = None
    if inception is not None:
        from ganforge.metrics.inception import load_inception

        model = load_inception(inception)  # before the slow part: a bad path fails at once
    real = real or load_real(data_dir)
    result, floor = evaluate_images(images, real, with_parzen), real_floor(real, with_parzen)
    if model is not None:
        reference = to_float(real.test.images[: len(images)])
        result.update(inception_metrics(images, reference, model))
        floor.update(inception_metrics(real.stand_in[: len(images)], reference, model))
    return result, floor


def inception_metrics(images: Tensor, reference: Tensor, model) -> dict[str, float]:
    """FID and KID on Inception-v3 pool features against ``reference`` images, and the
    Inception Score of ``images`` (all float NCHW in [-1, 1]). Slow on a CPU: about 20
    images/s at 299x299; use a GPU for 10,000."""
    feats, probs = embed(model, images, batch=50)
    ref_feats, _ = embed(model, reference, batch=50)
    kid_mean, _ = kid(feats.numpy(), ref_feats.numpy())
    return {
        "fid_inception": fid(feats.numpy(), ref_feats.numpy()),
        "kid_inception": kid_mean,
        "inception_score": classifier_score(probs),
    }
