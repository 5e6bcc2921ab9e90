"""Drawing images from a saved run: the library calls and the commands in a fresh process."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.data.images import to_uint8
from ganforge.errors import GanforgeError
from ganforge.sampling import interpolate, load_generator, noise, sample, slerp
from ganforge.train.checkpoint import LAST, load_checkpoint
from ganforge.viz import save_images

S = 8  # digits images are 8x8, one channel


def grid_size(n_images: int, nrow: int, size: int = S, padding: int = 2) -> tuple[int, int]:
    """(width, height) of a torchvision grid."""
    rows = -(-n_images // nrow)
    return nrow * (size + padding) + padding, rows * (size + padding) + padding


# -- in a fresh process ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, uncond_run: Path, cond_run: Path, cli_many):
    out = tmp_path_factory.mktemp("sampled")
    commands = {
        "grid": ["sample", uncond_run, "-n", "16", "--out", out / "grid.png"],
        "pngs": ["sample", uncond_run, "-n", "7", "--out", out / "pngs"],
        "npz": ["sample", uncond_run / LAST, "-n", "5", "--seed", "3", "--out", out / "s.npz"],
        "class3": ["sample", cond_run, "--class", "3", "-n", "6", "--out", out / "c3.npz"],
        "strip": [
            "interpolate",
            uncond_run,
            "--from",
            "1",
            "--to",
            "2",
            "--steps",
            "5",
            "--out",
            out / "walk.png",
        ],  # fmt: skip
        "gif": ["interpolate", cond_run, "--class", "3", "--steps", "4", "--out", out / "w.gif"],
    }
    procs = cli_many(commands)
    for name, proc in procs.items():
        assert proc.returncode == 0, (name, proc.stderr)
    return out, procs


def test_sample_grid_png(outputs):
    out, procs = outputs
    with Image.open(out / "grid.png") as img:
        assert img.format == "PNG"
        assert img.size == grid_size(16, nrow=4)
    assert "wrote 16 images (grid)" in procs["grid"].stdout


def test_sample_folder_of_pngs(outputs):
    out, _ = outputs
    files = sorted((out / "pngs").iterdir())
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(7)]
    for f in files:
        with Image.open(f) as img:
            assert img.size == (S, S) and img.mode == "L"
    assert not [p for p in out.iterdir() if p.name.startswith(".pngs")]  # no temp folder


def test_sample_npz_matches_the_library(outputs, uncond_run: Path):
    out, _ = outputs
    with np.load(out / "s.npz") as f:
        images = f["images"]
        assert "labels" not in f
    assert images.dtype == np.uint8 and images.shape == (5, S, S, 1)
    # A fresh process draws exactly what the library draws for the same seed.
    expected, _ = sample(load_generator(uncond_run), 5, seed=3)
    np.testing.assert_array_equal(images, to_uint8(expected).numpy())


def test_sample_one_class_from_a_conditional_run(outputs, cond_run: Path):
    out, _ = outputs
    with np.load(out / "c3.npz") as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (6, S, S, 1) and images.dtype == np.uint8
    assert labels.tolist() == [3] * 6
    expected, _ = sample(load_generator(cond_run), 6, seed=0, class_label=3)
    np.testing.assert_array_equal(images, to_uint8(expected).numpy())


def test_interpolate_png_strip(outputs):
    out, procs = outputs
    width, height = grid_size(5, nrow=5)
    with Image.open(out / "walk.png") as img:
        assert img.size == (2 * width, 2 * height)  # drawn at twice the size
    assert "5-step walk from seed 1 to 2" in procs["strip"].stdout


def test_interpolate_gif(outputs):
    out, _ = outputs
    with Image.open(out / "w.gif") as img:
        assert img.format == "GIF"
        assert img.n_frames > 1
        assert img.n_frames == 2 * 4 - 2  # there and back again
        assert img.size == (4 * S, 4 * S)


# -- the library --------------------------------------------------------------------------------


def test_load_generator_uses_the_ema_weights(uncond_run: Path):
    gen = load_generator(uncond_run)
    state = load_checkpoint(uncond_run)
    assert gen.network == "dcgan" and gen.step == state["step"]
    assert gen.spec.image_size == S and gen.z_dim == 8 and gen.num_classes == 0
    assert not gen.generator.training
    for key, value in gen.generator.state_dict().items():
        assert torch.equal(value, state["ema"]["generator"][key]), key
    ema, g = state["ema"]["generator"], state["players"]["generator"]
    assert any(not torch.equal(ema[k], g[k]) for k in g)


def test_sample_is_deterministic_per_seed(uncond_run: Path):
    gen = load_generator(uncond_run)
    a, labels = sample(gen, 4, seed=1)
    b, _ = sample(gen, 4, seed=1)
    c, _ = sample(gen, 4, seed=2)
    assert labels is None
    assert a.shape == (4, 1, S, S) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # Image i does not depend on how many are drawn (up to float rounding).
    torch.testing.assert_close(sample(gen, 2, seed=1)[0], a[:2], atol=1e-6, rtol=0)


def test_conditional_labels(cond_run: Path):
    gen = load_generator(cond_run)
    assert gen.num_classes == 10 and gen.class_names == [str(i) for i in range(10)]
    _, labels = sample(gen, 12, seed=0)
    assert labels.tolist() == [*range(10), 0, 1]  # cycling through the classes
    threes, labels = sample(gen, 3, seed=0, class_label=3)
    fours, _ = sample(gen, 3, seed=0, class_label=4)
    assert labels.tolist() == [3, 3, 3]
    assert not torch.equal(threes, fours)


@pytest.mark.parametrize("label", [10, -1, 99])
def test_class_out_of_range(cond_run: Path, label: int):
    with pytest.raises(GanforgeError, match=f"class {label}"):
        sample(load_generator(cond_run), 2, class_label=label)


def test_class_on_unconditional_run(uncond_run: Path):
    with pytest.raises(GanforgeError, match="conditional"):
        sample(load_generator(uncond_run), 2, class_label=1)


@pytest.mark.parametrize("spherical", [True, False])
def test_walk_runs_from_one_seed_to_the_other(uncond_run: Path, spherical: bool):
    gen = load_generator(uncond_run)
    frames = interpolate(gen, 5, 6, steps=7, spherical=spherical)
    assert frames.shape == (7, 1, S, S)
    start, _ = sample(gen, 1, seed=5)
    end, _ = sample(gen, 1, seed=6)
    torch.testing.assert_close(frames[0], start[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(frames[-1], end[0], atol=1e-5, rtol=0)
    assert not torch.equal(frames[3], frames[0])


def test_conditional_walk_keeps_one_class(cond_run: Path):
    gen = load_generator(cond_run)
    default = interpolate(gen, 0, 1, steps=3)
    class0 = interpolate(gen, 0, 1, steps=3, class_label=0)
    class5 = interpolate(gen, 0, 1, steps=3, class_label=5)
    assert torch.equal(default, class0)
    assert not torch.equal(class0, class5)


def test_slerp_keeps_the_norm_of_gaussian_noise():
    a, b = noise(1, 64, 0)[0], noise(1, 64, 1)[0]
    path = slerp(a, b, torch.linspace(0, 1, 9))
    norms = path.norm(dim=1)
    low, high = sorted([a.norm().item(), b.norm().item()])
    assert norms.min() >= low * 0.999 and norms.max() <= high * 1.001
    mid_linear = torch.lerp(a, b, 0.5).norm()
    assert norms[4] > mid_linear  # a straight line cuts through the low-norm middle


def test_sampling_needs_at_least_one_image_and_a_walk_two(uncond_run: Path):
    gen = load_generator(uncond_run)
    with pytest.raises(GanforgeError, match="at least 1"):
        sample(gen, 0)
    with pytest.raises(GanforgeError, match="at least 2"):
        interpolate(gen, 0, 1, steps=1)


# -- output formats ---------------------------------------------------------------------------


def test_save_images_formats(tmp_path: Path):
    images = torch.rand(5, 3, 8, 8) * 2 - 1
    labels = torch.tensor([0, 1, 2, 0, 1])
    assert save_images(images, tmp_path / "g.png", nrow=5) == "grid"
    with Image.open(tmp_path / "g.png") as img:
        assert img.size == grid_size(5, nrow=5) and img.mode == "RGB"
    assert save_images(images, tmp_path / "a.npz", labels=labels) == "npz"
    with np.load(tmp_path / "a.npz") as f:
        assert f["images"].shape == (5, 8, 8, 3) and f["labels"].tolist() == labels.tolist()
        np.testing.assert_array_equal(f["images"], to_uint8(images).numpy())
    assert save_images(images, tmp_path / "dir", labels=labels) == "png"
    names = sorted(p.name for p in (tmp_path / "dir").iterdir())
    assert names == [f"{i:05d}_class{int(y)}.png" for i, y in enumerate(labels)]
    with Image.open(tmp_path / "dir" / names[0]) as img:
        assert np.array_equal(np.asarray(img), to_uint8(images[:1]).numpy()[0])
    assert save_images(images, tmp_path / "forced.png", fmt="npz") == "npz"
    np.load(tmp_path / "forced.png")  # written as .npz whatever the suffix
    with pytest.raises(FileExistsError):
        save_images(images, tmp_path / "dir")


def test_sample_command_default_output_goes_into_the_run(tmp_path: Path, uncond_run: Path):
    run = shutil.copytree(uncond_run, tmp_path / "run")
    assert main(["sample", str(run), "-n", "4", "--seed", "2"]) == 0
    with Image.open(run / "sampled" / "seed2.png") as img:
        assert img.size == grid_size(4, nrow=2)
    assert main(["interpolate", str(run / LAST), "--steps", "3"]) == 0
    assert (run / "sampled" / "walk.png").is_file()


def test_sample_command_nrow(tmp_path: Path, uncond_run: Path):
    assert (
        main(["sample", str(uncond_run), "-n", "10", "--nrow", "5", "-o", str(tmp_path / "g.png")])
        == 0
    )
    with Image.open(tmp_path / "g.png") as img:
        assert img.size == grid_size(10, nrow=5)
