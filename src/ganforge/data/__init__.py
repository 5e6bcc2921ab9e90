"""Image sources -> :class:`ImageSet` (uint8 NCHW in memory), selected by name."""

from __future__ import annotations

from collections.abc import Callable

from ganforge.data.digits import load_digits
from ganforge.data.folder import load_image_folder
from ganforge.data.images import ImageSet, to_float, to_uint8
from ganforge.data.mnist import load_mnist
from ganforge.data.stacked import stack_digits
from ganforge.errors import GanforgeError
from ganforge.registry import Registry

DATASETS: Registry[Callable[..., ImageSet]] = Registry("dataset")


def _native(name: str, image_size: int | None, channels: int | None) -> None:
    if image_size is not None or channels is not None:
        raise GanforgeError(
            f"--image-size and --channels apply to the folder dataset; {name} images have "
            "their own size"
        )


@DATASETS.register("mnist")
def _mnist(root, image_size, channels, download, progress=True):
    _native("mnist", image_size, channels)
    return load_mnist(root, "train", download=download)


@DATASETS.register("stacked-mnist")
def _stacked_mnist(root, image_size, channels, download, progress=True):
    _native("stacked-mnist", image_size, channels)
    return stack_digits(load_mnist(root, "train", download=download))


@DATASETS.register("folder")
def _folder(root, image_size, channels, download, progress=True):
    if not root:
        raise GanforgeError("the folder dataset needs --data-dir pointing at a folder of images")
    return load_image_folder(root, image_size or 64, channels or 3, progress)


@DATASETS.register("digits")
def _digits(root, image_size, channels, download, progress=True):
    _native("digits", image_size, channels)
    return load_digits()


def load_dataset(
    name: str,
    root: str | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = True,
    limit: int | None = None,
    progress: bool = True,
) -> ImageSet:
    """Load dataset ``name`` (see ``DATASETS``); ``limit`` keeps only the first images."""
    data = DATASETS.get(name)(root, image_size, channels, download, progress)
    if limit is not None:
        if limit < 1:
            raise GanforgeError(f"the image limit must be at least 1, got {limit}")
        data = data.subset(limit)
    return data


DIGITS_TRAIN = 1500  # the bundled digits have no test split: the last 297 images are it
SPLIT_DATASETS = ("mnist", "digits")


def load_split(name: str, split: str, root: str | None = None, download: bool = True) -> ImageSet:
    """A labelled ``train`` or ``test`` split: MNIST's own, or the bundled digits' first
    1,500 images for training and the remaining 297 for testing."""
    if split not in ("train", "test"):
        raise GanforgeError(f"unknown split {split!r}; choose train or test")
    if name == "mnist":
        return load_mnist(root, split, download=download)
    if name == "digits":
        d = load_digits()
        part = slice(None, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
        return ImageSet(d.images[part], d.labels[part], d.class_names, d.name)
    raise GanforgeError(
        f"dataset {name!r} has no labelled train/test split; choose one of: "
        + ", ".join(SPLIT_DATASETS)
    )


__all__ = [
    "DATASETS",
    "SPLIT_DATASETS",
    "ImageSet",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_mnist",
    "load_split",
    "stack_digits",
    "to_float",
    "to_uint8",
]
