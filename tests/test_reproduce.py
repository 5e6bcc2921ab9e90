"""The 2014 reproduction end to end at toy size, its Figure 2 layout, and the mlp2014
generator's data-dependent start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ganforge.data import load_mnist
from ganforge.errors import GanforgeError
from ganforge.metrics.evaluate import RealData
from ganforge.nets import NETWORKS, DataSpec, build_networks
from ganforge.reproduce import REPRODUCTIONS
from ganforge.reproduce.goodfellow2014 import FIGURE_PAIRS, PAPER_TABLE1, reproduce
from ganforge.train import Trainer, train
from ganforge.viz.neighbours import FRAME, neighbour_grid

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def test_neighbour_grid_puts_each_sample_beside_its_framed_neighbour():
    samples = -torch.ones(3, 1, 4, 4)  # black
    neighbours = torch.ones(3, 1, 4, 4)  # white
    pic = neighbour_grid(samples, neighbours, pairs_per_row=2, gap=2, frame=1)
    # 2 rows of cells 6 high; 2 pairs of (6 + 2 + 6) wide, each with 2-pixel gaps around.
    assert pic.shape == (2 + 2 * (6 + 2), 2 + 2 * (14 + 4), 3) and pic.dtype == torch.uint8
    assert (pic[3:7, 3:7] == 0).all()  # first sample
    assert (pic[2, 10:16] == torch.tensor(FRAME, dtype=torch.uint8)).all()  # its frame
    assert (pic[3:7, 11:15] == 255).all()  # its neighbour
    second_row_second_pair = pic[2 + 8 + 1 : 2 + 8 + 5, 2 + 18 + 1 : 2 + 18 + 5]
    assert (second_row_second_pair == 255).all()  # only 3 pairs: the 4th cell is blank
    with pytest.raises(GanforgeError, match="same shape"):
        neighbour_grid(samples, neighbours[:2])


def test_mlp2014_generator_starts_at_the_data_mean(make_config):
    cfg = make_config(model={"network": "mlp2014", "width": 40, "z_dim": 8})
    trainer = Trainer(cfg, "unused", progress=False)
    mean = trainer.data.images.float().mean(0).flatten() / 255
    start = torch.sigmoid(trainer.g.net[-1].bias.detach())
    inside = (mean > 0.01) & (mean < 0.99)  # the init clamps saturated pixels
    torch.testing.assert_close(start[inside], mean[inside], atol=1e-5, rtol=0)
    # Without the hook the bias is PyTorch's small random default.
    plain, _ = build_networks("mlp2014", DataSpec(1, 8), 8, 40)
    assert plain.net[-1].bias.abs().max() < 0.2 < start.logit().abs().max()
    assert NETWORKS.get("dcgan").init_from_data is None


@pytest.fixture(scope="module")
def mnist_subset():
    if not MNIST_DIR.exists():
        pytest.skip("MNIST files not beside the checkout")
    return load_mnist(MNIST_DIR, "train", download=False).subset(1000)


def test_reproduce_trains_measures_writes_figure_and_report(
    tmp_path: Path, small_real: RealData, mnist_subset
):
    torch.manual_seed(0)
    out = tmp_path / "gf"
    kw = {"samples": 200, "device": "cpu", "progress": False, "real": small_real}
    result = reproduce(out, steps=2, data=mnist_subset, **kw)
    assert result.steps == 2 and result.train_seconds > 0
    report = json.loads((out / "goodfellow2014.json").read_text())
    assert [r["parzen"] for r in report["paper_table1_mnist"]] == [138, 121, 214, 225]
    assert report["samples"]["num_images"] == 200
    for key in ("parzen", "parzen_se", "fid", "precision", "memorized_fraction"):
        assert key in report["samples"] and key in report["real_floor"]
    # Real images beat two steps of training by a wide margin.
    assert report["real_floor"]["parzen"] > report["samples"]["parzen"] + 50
    table = result.table1()
    for name, _, _ in PAPER_TABLE1:
        assert name in table
    assert "ganforge mlp2014, 2 steps" in table and "real training images (600)" in table
    assert table in result.summary() and "FID" in result.summary()
    with Image.open(result.figure) as fig:  # 40 pairs, 5 per row, 8 rows, upscaled 2x
        assert fig.mode == "RGB" and fig.height == 2 * (2 + 8 * (30 + 2))
    assert FIGURE_PAIRS == 40
    config = (out / "config.yaml").read_text()
    assert "network: mlp2014" in config and "batch_size: 100" in config

    again = reproduce(out, steps=2, data=mnist_subset, **kw)  # already trained: measure only
    assert again.steps == 2 and again.train_seconds == 0
    longer = reproduce(out, steps=3, data=mnist_subset, **kw)  # continues the run
    assert longer.steps == 3 and longer.train_seconds > 0


def test_reproduce_refuses_another_runs_folder_and_bad_arguments(
    tmp_path: Path, small_real: RealData, make_config
):
    other = tmp_path / "dcgan"
    train(make_config(), other, progress=False)
    with pytest.raises(GanforgeError, match="not this reproduction"):
        reproduce(other, steps=2, samples=50, progress=False, real=small_real)
    with pytest.raises(GanforgeError, match="steps"):
        reproduce(tmp_path / "x", steps=0, real=small_real)
    with pytest.raises(GanforgeError, match="samples"):
        reproduce(tmp_path / "x", samples=1, real=small_real)
    assert not (tmp_path / "x").exists()
    with pytest.raises(GanforgeError, match="unknown reproduction"):
        REPRODUCTIONS.get("goodfellow2015")
