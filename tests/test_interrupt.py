"""Ctrl-C in the middle of each training command, then the same command again, gives
bitwise the same final weights as a run that was never interrupted."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from ganforge.train.checkpoint import load_checkpoint

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
PROGRESS = re.compile(r"(\d+)/(\d+) \[")


def _command(args: Sequence[str | Path]) -> list[str]:
    return [sys.executable, "-m", "ganforge", *map(str, args)]


def _run(args, env, cwd) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(_command(args), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def _interrupt(args, env, cwd, bar: str, after: int) -> str:
    """Start the command, send SIGINT once its progress bar ``bar`` has passed ``after``
    steps, and return its stderr; it must exit with 130."""
    proc = subprocess.Popen(_command(args), env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")))
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while True:
            text = "".join(seen)
            line = text[text.rfind(bar) :] if bar in text else ""
            steps = [int(m.group(1)) for m in PROGRESS.finditer(line)]
            if steps and steps[-1] >= after:
                break
            assert proc.poll() is None, text
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join()
        proc.stdout.close()
        proc.stderr.close()
    stderr = "".join(seen)
    assert proc.returncode == 130, stderr
    return stderr


def test_train_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, cli_env, same_state):
    common = ["train", "--dataset", "digits", "--device", "cpu", "--amp", "off", "--width", "8",
              "--z-dim", "8", "--batch-size", "16", "--steps", "800", "--log-every", "1",
              "--sample-every", "500", "--checkpoint-every", "100000"]  # fmt: skip
    stderr = _interrupt([*common, "--out", tmp_path / "cut"], cli_env, tmp_path, "train:", 100)
    state = load_checkpoint(tmp_path / "cut")
    assert 100 <= state["step"] < 800
    assert f"interrupted at step {state['step']};" in stderr and "--resume" in stderr
    # No temporary files were left behind by the interrupted writes.
    assert [p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()] == ["last.pt"]
    assert not list((tmp_path / "cut").glob(".*.tmp"))
    _run(["train", "--resume", tmp_path / "cut", "--quiet"], cli_env, tmp_path)
    _run([*common, "--quiet", "--out", tmp_path / "whole"], cli_env, tmp_path)
    a, b = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "cut")
    assert a["step"] == b["step"] == 800
    for part in ("players", "ema", "optimizers", "recipe", "rng"):
        same_state(a[part], b[part], part)
    assert (tmp_path / "whole" / "samples.png").read_bytes() == (
        tmp_path / "cut" / "samples.png"
    ).read_bytes()


@pytest.mark.skipif(not MNIST_DIR.exists(), reason="MNIST files not beside the checkout")
def test_semisupervised_ctrl_c_mid_seed_then_again_equals_an_uninterrupted_run(
    tmp_path, cli_env, same_state
):
    common = ["semisupervised", "--data-dir", MNIST_DIR, "--no-download", "--device", "cpu",
              "--labels", "20", "--seeds", "1", "--epochs", "1", "--batch-size", "50",
              "--units", "32", "32", "--generator-units", "32", "--supervised-updates", "20",
              "--full-updates", "20"]  # fmt: skip
    cut = tmp_path / "cut"
    stderr = _interrupt([*common, "--out", cut], cli_env, tmp_path, "semi-supervised GAN", 100)
    assert "interrupted at update" in stderr and "continues" in stderr
    saved = load_checkpoint(cut / "checkpoints" / "labels20-seed0-gan.pt")
    assert 100 <= saved["step"] < 1200
    assert not (cut / "semisupervised.json").exists()  # the seed is not done
    _run([*common, "--quiet", "--out", cut], cli_env, tmp_path)
    _run([*common, "--quiet", "--out", tmp_path / "whole"], cli_env, tmp_path)
    name = Path("models") / "labels20-seed0.pt"
    a = torch.load(tmp_path / "whole" / name, weights_only=True)
    b = torch.load(cut / name, weights_only=True)
    for part in ("classifier", "generator", "history"):
        same_state(a[part], b[part], part)
    ra, rb = (
        json.loads((p / "semisupervised.json").read_text()) for p in (tmp_path / "whole", cut)
    )
    for row in ra["results"] + rb["results"]:
        row.pop("gan_seconds")
    assert ra == rb
    assert not list((cut / "checkpoints").iterdir())  # removed once the seed is recorded


def test_robust_train_ctrl_c_mid_epoch_then_again_equals_an_uninterrupted_run(
    tmp_path, cli_env, same_state
):
    common = ["robust-train", "--dataset", "digits", "--network", "mlp", "--method", "fast",
              "--eps", "0.1", "--epochs", "12", "--batch-size", "32", "--held-out", "200",
              "--val-steps", "2", "--device", "cpu"]  # fmt: skip
    cut = tmp_path / "cut"
    stderr = _interrupt([*common, "--out", cut], cli_env, tmp_path, "fast training", 60)
    assert "interrupted at step" in stderr and "continues" in stderr
    assert 60 <= load_checkpoint(cut)["step"] < 12 * 37  # 37 steps an epoch
    _run([*common, "--quiet", "--out", cut], cli_env, tmp_path)
    _run([*common, "--quiet", "--out", tmp_path / "whole"], cli_env, tmp_path)
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)
    b = torch.load(cut / "model.pt", weights_only=True)
    same_state(a["state_dict"], b["state_dict"], "model.pt")
    sa, sb = (json.loads((p / "summary.json").read_text()) for p in (tmp_path / "whole", cut))
    for row in sa["history"] + sb["history"]:
        row.pop("train_seconds")
    assert sa["history"] == sb["history"] and sa["kept_epoch"] == sb["kept_epoch"]
    assert sa["test_clean_accuracy"] == sb["test_clean_accuracy"]
