"""A run folder never loses a user's work: foreign files are refused, a second writer is
refused at once, stale temporary files are cleaned, and divergence never leaves a
non-finite checkpoint."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganforge.errors import GanforgeError
from ganforge.io.rundir import RunLock, check_out_folder
from ganforge.robustness import RobustTrainConfig, robust_train
from ganforge.semisupervised import run_experiment
from ganforge.train import resume, train
from ganforge.train.checkpoint import LAST, load_checkpoint


def _users_folder(path: Path) -> Path:
    path.mkdir()
    (path / "config.yaml").write_text("my own notes\n")
    (path / "samples.png").write_bytes(b"my picture")
    return path


def test_a_folder_of_the_users_files_is_refused_by_every_training_command(
    tmp_path: Path, make_config, folder_snapshot
):
    mine = _users_folder(tmp_path / "mine")
    before = folder_snapshot(mine)
    with pytest.raises(GanforgeError, match="not a ganforge run.*config.yaml"):
        train(make_config(), mine, progress=False)
    with pytest.raises(GanforgeError, match="not a ganforge run"):
        robust_train(mine, RobustTrainConfig(dataset="digits"), progress=False)
    with pytest.raises(GanforgeError, match="not a ganforge run"):
        run_experiment(mine, data_dir=tmp_path / "none", download=False, progress=False)
    assert folder_snapshot(mine) == before


def test_an_empty_folder_is_a_fine_place_for_a_run(tmp_path: Path, make_config):
    (tmp_path / "empty").mkdir()
    check_out_folder(tmp_path / "empty", "gan")
    assert train(make_config(train={"steps": 2}), tmp_path / "empty", progress=False).steps == 2


def test_a_second_writer_is_refused_at_once(tmp_path: Path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(GanforgeError, match="another ganforge process"):
            with RunLock(tmp_path / "run"):
                pass
    with RunLock(tmp_path / "run"):  # released on exit
        pass


def test_two_train_processes_on_one_folder(tmp_path: Path, cli_env, one_line_error):
    args = [sys.executable, "-m", "ganforge", "train", "--dataset", "digits", "--device", "cpu",
            "--width", "8", "--z-dim", "8", "--batch-size", "16", "--steps", "100000",
            "--log-every", "1", "--checkpoint-every", "100000", "--quiet",
            "--out", str(tmp_path / "run")]  # fmt: skip
    first = subprocess.Popen(args, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        metrics = tmp_path / "run" / "metrics.jsonl"
        while not (metrics.is_file() and metrics.stat().st_size > 0):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(args, env=cli_env, capture_output=True, text=True, timeout=120)
        one_line_error(second, "being written by another ganforge process")
        assert first.poll() is None  # the first run goes on untouched
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 130
    assert load_checkpoint(tmp_path / "run")["step"] > 0


def test_temporaries_of_a_killed_write_are_removed_when_the_run_continues(
    tmp_path: Path, make_config
):
    train(make_config(train={"steps": 2}), tmp_path / "run", progress=False)
    stale = tmp_path / "run" / "checkpoints" / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    resume(tmp_path / "run", {"train": {"steps": 3}}, progress=False)
    assert not stale.exists()


def test_divergence_before_any_checkpoint_leaves_no_folder(tmp_path: Path, make_config):
    cfg = make_config(optim={"optimizer": "sgd", "lr": 1e15, "momentum": 0.0},
                      train={"steps": 6, "checkpoint_every": 1})  # fmt: skip
    with pytest.raises(GanforgeError, match="no checkpoint was written"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_divergence_keeps_the_last_finite_checkpoint_and_names_its_step(
    tmp_path: Path, make_config, monkeypatch
):
    train(make_config(train={"steps": 4, "checkpoint_every": 2}), tmp_path / "run", progress=False)
    from ganforge.train.gan import GANRecipe

    real_g_main = GANRecipe.g_main

    def poisoned(self, step):
        # In the step before the checkpoint of step 6 the weights turn non-finite after the
        # losses were computed: the losses look fine, the weights are not.
        stats = real_g_main(self, step)
        if step == 5:
            with torch.no_grad():
                next(self.g.parameters()).fill_(float("inf"))
        return stats

    monkeypatch.setattr(GANRecipe, "g_main", poisoned)
    with pytest.raises(GanforgeError, match="checkpoint of step 4 is kept"):
        resume(tmp_path / "run", {"train": {"steps": 8}}, progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 4
    for part in ("players", "ema"):
        for module in state[part].values():
            assert all(torch.isfinite(t).all() for t in module.values() if t.is_floating_point())
    assert (tmp_path / "run" / LAST).is_file()


def test_a_run_that_another_process_moved_on_is_not_written_over(tmp_path: Path, make_config):
    from ganforge.config import merge
    from ganforge.train import Trainer

    run = tmp_path / "run"
    train(make_config(train={"steps": 2}), run, progress=False)
    state = load_checkpoint(run)
    stale = Trainer(merge(make_config(), {"train": {"steps": 4}}), run, checkpoint=state,
                    progress=False)  # fmt: skip
    resume(run, {"train": {"steps": 3}}, progress=False)  # another process, meanwhile
    with pytest.raises(GanforgeError, match="changed by another process"):
        stale.run()
    assert load_checkpoint(run)["step"] == 3


def test_hidden_files_do_not_make_a_folder_foreign(tmp_path: Path, make_config):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".gitkeep").write_text("")
    train(make_config(train={"steps": 1}), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / ".gitkeep").exists()


def test_divergence_after_only_a_best_checkpoint_keeps_the_folder(tmp_path: Path):
    from test_engine import Counting

    from ganforge.train.engine import Callback, Engine

    best = tmp_path / "checkpoints" / "best.pt"

    def save_best_then_poison(engine: Engine) -> None:
        if engine.step == 2:
            engine.save(best)
        else:
            with torch.no_grad():
                engine.recipe.net.weight.fill_(float("nan"))

    engine = Engine(Counting(), 6, checkpoint=tmp_path / "checkpoints" / "last.pt",
                    checkpoint_every=5, log_every=100, progress=False,
                    callbacks=[Callback(2, save_best_then_poison, at_end=False)])  # fmt: skip
    with pytest.raises(GanforgeError, match="only the best checkpoint"):
        engine.run()
    assert best.is_file() and not (tmp_path / "checkpoints" / "last.pt").exists()
