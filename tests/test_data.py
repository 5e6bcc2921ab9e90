"""Data sources: IDX files, image folders, digits, the in-memory ImageSet and the sampler."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import ImageSet, load_dataset, load_digits, load_image_folder, load_mnist
from ganforge.data.images import to_float, to_uint8
from ganforge.data.mnist import read_idx
from ganforge.data.sampler import EpochSampler
from ganforge.errors import GanforgeError

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def idx_bytes(array: np.ndarray) -> bytes:
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def tiny_mnist(folder: Path, n: int = 6, gz: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) * 7 % 10).astype(np.uint8)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", images)
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", labels)
    return images, labels


# -- IDX --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path: Path, suffix: str):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labels = np.array([9, 0, 4], dtype=np.uint8)
    got = read_idx(write_idx(tmp_path / f"img{suffix}", images))
    assert got.dtype == np.uint8 and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / f"lab{suffix}", labels)), labels)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_from_handmade_files(tmp_path: Path, gz: bool):
    images, labels = tiny_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path, "train", download=False)
    assert data.images.shape == (6, 1, 28, 28) and data.images.dtype == torch.uint8
    np.testing.assert_array_equal(data.images[:, 0].numpy(), images)
    np.testing.assert_array_equal(data.labels.numpy(), labels)
    assert data.labels.dtype == torch.int64
    assert data.num_classes == 10


def test_load_mnist_finds_torchvision_layout(tmp_path: Path):
    tiny_mnist(tmp_path / "MNIST" / "raw")
    assert len(load_mnist(tmp_path, download=False)) == 6


def test_idx_wrong_magic_is_an_error(tmp_path: Path):
    path = tmp_path / "bad"
    path.write_bytes(struct.pack(">IIII", 0x0803_0000, 1, 2, 2) + bytes(4))
    with pytest.raises(GanforgeError, match="magic"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_idx_is_an_error(tmp_path: Path, suffix: str):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-100]
    path = tmp_path / f"short{suffix}"
    path.write_bytes(gzip.compress(raw) if suffix else raw)
    with pytest.raises(GanforgeError, match="truncated"):
        read_idx(path)


def test_cut_off_gzip_stream_is_an_error(tmp_path: Path):
    packed = gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(GanforgeError, match="cut.gz"):
        read_idx(path)


def test_mnist_labels_out_of_range_are_an_error(tmp_path: Path):
    tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3, 4, 5, 11], np.uint8))
    with pytest.raises(GanforgeError, match="labels"):
        load_mnist(tmp_path, download=False)


def test_missing_mnist_without_download_names_the_files(tmp_path: Path):
    with pytest.raises(GanforgeError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, download=False)


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="no MNIST copy beside the checkout")
def test_real_mnist_loads():
    data = load_dataset("mnist", str(MNIST_DIR), download=False, limit=512)
    assert data.images.shape == (512, 1, 28, 28)
    assert set(data.labels.tolist()) == set(range(10))
    test = load_mnist(MNIST_DIR, "test", download=False)
    assert len(test) == 10_000


# -- ImageSet ---------------------------------------------------------------------------------


def test_batch_is_float_nchw_in_minus_one_one():
    images = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    data = ImageSet(images, torch.tensor([0, 1, 2, 3]), class_names=list("abcd"))
    x, y = data.batch(torch.tensor([3, 0]))
    assert x.dtype == torch.float32 and x.shape == (2, 1, 8, 8)
    assert x.min() >= -1 and x.max() <= 1
    assert x[1, 0, 0, 0].item() == -1.0  # byte 0
    assert x[0, 0, -1, -1].item() == 1.0  # byte 255
    assert y.tolist() == [3, 0]
    assert data.spec.channels == 1 and data.spec.image_size == 8 and data.spec.num_classes == 4


def test_float_uint8_round_trip_is_exact():
    every_byte = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    back = to_uint8(to_float(every_byte))  # NHWC
    assert back.dtype == torch.uint8 and back.shape == (1, 16, 16, 1)
    assert torch.equal(back.permute(0, 3, 1, 2), every_byte)


def test_to_uint8_clamps_out_of_range_values():
    out = to_uint8(torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0]).reshape(1, 1, 1, 5))
    assert out.flatten().tolist() == [0, 0, 128, 255, 255]


def test_imageset_rejects_float_images():
    with pytest.raises(ValueError):
        ImageSet(torch.zeros(2, 1, 4, 4))


def test_limit_keeps_the_first_images():
    full = load_digits()
    small = load_dataset("digits", limit=100)
    assert len(small) == 100
    assert torch.equal(small.images, full.images[:100])
    assert torch.equal(small.labels, full.labels[:100])


# -- EpochSampler -----------------------------------------------------------------------------


def test_sampler_covers_every_index_once_per_epoch():
    sampler = EpochSampler(12, 4, seed=3)
    epochs = []
    for _ in range(3):
        epoch = torch.cat([sampler.next() for _ in range(3)])
        assert sorted(epoch.tolist()) == list(range(12))
        epochs.append(epoch.tolist())
    assert epochs[0] != epochs[1]  # reshuffled each epoch


def test_sampler_drops_the_remainder_without_repeats():
    sampler = EpochSampler(10, 3, seed=0)
    epoch = torch.cat([sampler.next() for _ in range(3)]).tolist()
    assert len(set(epoch)) == 9
    assert sampler.epoch == 0
    sampler.next()  # the tenth index is left out; a new epoch starts
    assert sampler.epoch == 1 and sampler.position == 3


def test_sampler_state_round_trip_continues_the_same_sequence():
    a = EpochSampler(10, 4, seed=7)
    for _ in range(3):  # into the second epoch
        a.next()
    state = a.state_dict()
    expected = [a.next().tolist() for _ in range(6)]
    b = EpochSampler(10, 4, seed=7)
    b.load_state_dict(state)
    assert [b.next().tolist() for _ in range(6)] == expected


def test_sampler_depends_on_the_seed():
    assert EpochSampler(50, 10, seed=1).next().tolist() != EpochSampler(50, 10, 2).next().tolist()


def test_sampler_rejects_batch_larger_than_data():
    with pytest.raises(ValueError, match="larger"):
        EpochSampler(5, 8, seed=0)


# -- image folders ----------------------------------------------------------------------------


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_folder_with_class_subfolders(tmp_path: Path):
    _png(tmp_path / "cats" / "a.png", (40, 30), (255, 0, 0))
    _png(tmp_path / "cats" / "b.png", (20, 20), (255, 0, 0))
    _png(tmp_path / "dogs" / "c.png", (30, 50), (0, 0, 255))
    _png(tmp_path / "dogs" / "nested" / "d.png", (16, 16), (0, 0, 255))
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    data = load_image_folder(tmp_path, image_size=12, channels=3)
    assert data.class_names == ["cats", "dogs"]
    assert data.images.shape == (4, 3, 12, 12) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.num_classes == 2
    # Colours survive: red cats, blue dogs.
    assert data.images[0, 0].float().mean() > 250 and data.images[0, 2].float().mean() < 5
    assert data.images[2, 2].float().mean() > 250 and data.images[2, 0].float().mean() < 5


def test_folder_grayscale_and_size(tmp_path: Path):
    _png(tmp_path / "x" / "a.png", (33, 17), (10, 200, 30))
    _png(tmp_path / "y" / "b.jpg", (64, 64), (200, 200, 200))
    data = load_dataset("folder", str(tmp_path), image_size=8, channels=1)
    assert data.images.shape == (2, 1, 8, 8)
    assert data.spec.channels == 1 and data.spec.image_size == 8 and data.spec.num_classes == 2


def test_flat_folder_has_no_labels(tmp_path: Path):
    for i in range(3):
        _png(tmp_path / f"{i}.png", (10, 10), (i * 50, 0, 0))
    data = load_image_folder(tmp_path, image_size=8, channels=3)
    assert data.labels is None
    assert data.num_classes == 0 and data.spec.num_classes == 0
    assert len(data) == 3


def test_unreadable_images_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _png(tmp_path / "good.png", (10, 10), (0, 0, 0))
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    data = load_image_folder(tmp_path, image_size=8, channels=1)
    assert len(data) == 1
    assert "skipped 1" in capsys.readouterr().out


@pytest.mark.parametrize("make", ["empty", "only-text", "missing"])
def test_folder_without_images_is_an_error(tmp_path: Path, make: str):
    root = tmp_path / "imgs"
    if make != "missing":
        root.mkdir()
    if make == "only-text":
        (root / "readme.txt").write_text("hello")
    with pytest.raises(GanforgeError, match="imgs"):
        load_image_folder(root, 8, 3)


def test_folder_dataset_needs_a_directory():
    with pytest.raises(GanforgeError, match="data-dir"):
        load_dataset("folder", None)


# -- digits -----------------------------------------------------------------------------------


def test_digits_is_1797_labelled_8x8_images():
    data = load_dataset("digits")
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.uint8
    assert data.labels.shape == (1797,)
    assert set(data.labels.tolist()) == set(range(10))
    assert data.class_names == [str(i) for i in range(10)]
    assert data.images.max() == 255 and data.images.min() == 0


def test_unknown_dataset_is_an_error():
    with pytest.raises(GanforgeError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_failed_download_removes_the_folders_it_created(tmp_path: Path, monkeypatch):
    import torchvision.datasets

    def offline_mnist(root: str, download: bool = False):
        (Path(root) / "MNIST" / "raw").mkdir(parents=True)  # what torchvision does first
        raise RuntimeError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline_mnist)
    (tmp_path / "kept").mkdir()
    for root in (tmp_path / "typo" / "deeper", tmp_path / "kept"):
        with pytest.raises(GanforgeError, match="download failed"):
            load_mnist(root, download=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []
