"""``ganforge.load`` on every kind of run folder and file, folders of the previous format,
and a folder of one kind given to a command of another."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.data import load_split
from ganforge.errors import GanforgeError
from ganforge.loading import RobustClassifier
from ganforge.robustness import RobustTrainConfig, robust_train
from ganforge.sampling import LoadedGenerator, sample
from ganforge.semisupervised import SemiSupervisedGAN, Settings, run_experiment
from ganforge.train import resume
from ganforge.train.checkpoint import load_checkpoint

FORMAT_1 = Path(__file__).parent / "data" / "format1"


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", "train"), load_split("digits", "test")


@pytest.fixture(scope="module")
def ssl_run(tmp_path_factory, digits) -> Path:
    out = tmp_path_factory.mktemp("load") / "ssl"
    tiny = Settings(epochs=0.2, batch_size=20, units=(16, 16), generator_units=(16,),
                    supervised_updates=10, full_updates=10)  # fmt: skip
    run_experiment(out, labels=(20,), seeds=1, settings=tiny, device="cpu", progress=False,
                   data=digits)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def robust_run(tmp_path_factory, digits) -> Path:
    out = tmp_path_factory.mktemp("load") / "robust"
    config = RobustTrainConfig(network="softmax", method="standard", eps=0.0, epochs=1,
                               dataset="digits", held_out=200)  # fmt: skip
    robust_train(out, config, train=digits[0], test=digits[1], device="cpu", progress=False)
    return out


def test_load_gives_the_right_object_for_every_kind_of_run(uncond_run, ssl_run, robust_run):
    gen = ganforge.load(uncond_run)
    assert isinstance(gen, LoadedGenerator) and gen.step == 6
    assert isinstance(ganforge.load(uncond_run / "checkpoints" / "last.pt"), LoadedGenerator)
    images, _ = sample(gen, 4)
    assert images.shape == (4, 1, 8, 8)

    clf = ganforge.load(ssl_run)
    assert isinstance(clf, SemiSupervisedGAN)
    x = load_split("digits", "test").images[:5]
    assert clf.predict(x).shape == (5,)
    again = ganforge.load(ssl_run / "models" / "labels20-seed0.pt")
    assert torch.equal(again.predict_proba(x), clf.predict_proba(x))

    robust = ganforge.load(robust_run)
    assert isinstance(robust, RobustClassifier) and robust.info["network"] == "softmax"
    assert robust(torch.rand(3, 1, 8, 8)).shape == (3, 10)
    assert isinstance(ganforge.load(robust_run / "model.pt"), RobustClassifier)

    for run, kind in ((uncond_run, "gan"), (ssl_run, "semisupervised"), (robust_run, "robust")):
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["kind"] == kind and manifest["format"] == 2


def test_training_checkpoints_of_other_recipes_point_to_their_folder(robust_run):
    with pytest.raises(GanforgeError, match="load its run folder"):
        ganforge.load(robust_run / "checkpoints" / "last.pt")


def test_folders_of_the_previous_format_load(tmp_path: Path):
    gen = ganforge.load(FORMAT_1 / "gan")
    assert isinstance(gen, LoadedGenerator) and gen.step == 4 and gen.network == "dcgan"
    old = torch.load(FORMAT_1 / "gan" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in gen.generator.state_dict().items():
        assert torch.equal(value, old["ema"][key]), key
    robust = ganforge.load(FORMAT_1 / "robust")
    assert isinstance(robust, RobustClassifier) and robust.info["network"] == "softmax"
    clf = ganforge.load(FORMAT_1 / "semisupervised")
    assert clf.predict(load_split("digits", "test").images[:3]).shape == (3,)


def test_a_gan_run_of_the_previous_format_continues(tmp_path: Path):
    run = tmp_path / "old"
    shutil.copytree(FORMAT_1 / "gan", run)
    resume(run, {"train": {"steps": 6}}, progress=False)
    state = load_checkpoint(run)
    assert state["step"] == 6 and state["format"] == "ganforge-checkpoint-2"
    assert json.loads((run / "manifest.json").read_text())["kind"] == "gan"


def test_a_folder_of_a_newer_format_or_no_run_is_refused(tmp_path: Path):
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / "manifest.json").write_text(json.dumps({"kind": "gan", "format": 99}))
    with pytest.raises(GanforgeError, match="newer ganforge"):
        ganforge.load(newer)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GanforgeError, match="holds no ganforge run"):
        ganforge.load(empty)
    with pytest.raises(GanforgeError, match="does not exist"):
        ganforge.load(tmp_path / "missing")


def test_a_folder_of_another_kind_is_a_one_line_error(
    uncond_run, ssl_run, robust_run, cli_many, one_line_error, folder_snapshot, tmp_path
):
    before = {p: folder_snapshot(p) for p in (uncond_run, ssl_run, robust_run)}
    procs = cli_many(
        {
            "sample": ["sample", robust_run, "-n", "2", "--out", tmp_path / "x.png"],
            "evaluate": ["evaluate", ssl_run, "--no-parzen"],
            "resume": ["train", "--resume", robust_run, "--quiet"],
            "train-out": ["train", "--dataset", "digits", "--out", ssl_run, "--quiet"],
            "attack": ["attack", "--model", uncond_run, "--dataset", "digits"],
            "robust-train": ["robust-train", "--dataset", "digits", "--out", uncond_run],
            "semisupervised": ["semisupervised", "--out", robust_run, "--no-download"],
            "classify": ["classify", uncond_run, tmp_path],
        }
    )
    kinds = {"sample": "robust", "evaluate": "semisupervised", "resume": "robust",
             "train-out": "semisupervised", "attack": "gan", "robust-train": "gan",
             "semisupervised": "robust", "classify": "gan"}  # fmt: skip
    for name, proc in procs.items():
        one_line_error(proc, f"a {kinds[name]} run folder")
    assert not (tmp_path / "x.png").exists()
    for path, snapshot in before.items():
        assert folder_snapshot(path) == snapshot, path
