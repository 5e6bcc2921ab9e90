"""Shared fixtures: tiny configurations, one trained run per session, CLI runners.

Everything here is sized for a 2-core CPU: 8x8 ``digits`` images (no files needed), width 8,
z size 8, a handful of steps.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch

from ganforge.config import RunConfig, merge
from ganforge.data import load_mnist, to_float
from ganforge.metrics.evaluate import RealData
from ganforge.metrics.reference import load_reference
from ganforge.train import train

# The models here are tiny: one thread is faster than two, and stays fast when another
# process keeps the other core busy (two spinning OpenMP threads on one core crawl).
torch.set_num_threads(1)

MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"

# Every value a test relies on is pinned here, so that tuning the package defaults
# (network widths, learning rates, step counts) does not change what the tests exercise.
TINY: dict[str, dict[str, Any]] = {
    "data": {"name": "digits", "download": False},
    "model": {"network": "dcgan", "z_dim": 8, "width": 8},
    "loss": {"name": "nonsaturating"},
    "optim": {"optimizer": "adam", "lr": 2e-3, "beta1": 0.5, "beta2": 0.999},
    "train": {
        "steps": 6,
        "epochs": None,
        "batch_size": 32,
        "k": 1,
        "seed": 0,
        "ema_decay": 0.9,
        "device": "cpu",
        "amp": "off",
        "log_every": 2,
        "sample_every": 4,
        "checkpoint_every": 5,
        "num_samples": 20,
    },
}

MLP_OPTIM = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.5}


def _deep_update(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_update(out[key], value)
        else:
            out[key] = value
    return out


def tiny_overrides(**sections: dict[str, Any]) -> dict[str, Any]:
    """TINY with ``section={key: value}`` changes; mlp networks get their SGD optimiser."""
    raw = _deep_update(TINY, sections)
    if raw["model"]["network"].startswith("mlp2014") and "optim" not in sections:
        raw["optim"] = dict(MLP_OPTIM)
    return raw


def tiny_config(**sections: dict[str, Any]) -> RunConfig:
    return merge(RunConfig(), tiny_overrides(**sections))


@pytest.fixture(scope="session")
def make_config() -> Callable[..., RunConfig]:
    return tiny_config


@pytest.fixture(scope="session")
def uncond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny unconditional DCGAN run on digits (treat as read-only)."""
    run_dir = tmp_path_factory.mktemp("session") / "uncond"
    train(tiny_config(), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def cond_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny class-conditional DCGAN run on digits (treat as read-only)."""
    run_dir = tmp_path_factory.mktemp("session") / "cond"
    train(tiny_config(model={"network": "dcgan-cond"}), run_dir, progress=False)
    return run_dir


@pytest.fixture(scope="session")
def small_real() -> RealData:
    """The real side of the metrics on small MNIST subsets (3,000 train, 600 test)."""
    if not MNIST_DIR.exists():
        pytest.skip("MNIST files not beside the checkout")
    train_set = load_mnist(MNIST_DIR, "train", download=False).subset(3000)
    test = load_mnist(MNIST_DIR, "test", download=False).subset(600)
    return RealData(
        train_set,
        test,
        to_float(train_set.images[:600]),
        to_float(train_set.images[2000:2300]),
        load_reference(),
    )


# -- running the command in a fresh process ------------------------------------------------


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ``python -m ganforge``: default data folder points nowhere."""
    home = tmp_path_factory.mktemp("cli-home")
    env = dict(os.environ)
    env["GANFORGE_DATA"] = str(home / "no-such-data")
    env["OMP_NUM_THREADS"] = "1"
    env.pop("PYTHONWARNINGS", None)
    return env


def _run(
    args: Sequence[str | Path], env: dict[str, str], cwd: Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli_ok():
    """``cli_ok(args, env, cwd)`` runs ``python -m ganforge args`` and requires exit 0."""

    def run(args: Sequence[str | Path], env: dict[str, str], cwd: Path, timeout: float = 300):
        proc = _run(args, env, cwd, timeout)
        assert proc.returncode == 0, proc.stderr
        return proc

    return run


@pytest.fixture(scope="session")
def cli_many(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """``cli_many({key: args})`` runs several commands concurrently (each start-up imports
    torch for seconds of CPU; two at a time keeps both cores busy)."""
    cwd = tmp_path_factory.mktemp("cli-cwd")

    def run_all(
        commands: dict[str, Sequence[str | Path]], timeout: float = 180
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {k: pool.submit(_run, a, cli_env, cwd, timeout) for k, a in commands.items()}
            return {k: f.result() for k, f in futures.items()}

    return run_all


def visible_lines(text: str) -> list[str]:
    """The non-empty lines a terminal would show: text before a carriage return on the same
    line (a progress bar that clears itself) is overwritten."""
    lines = (line.split("\r")[-1] for line in text.split("\n"))
    return [line for line in lines if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A non-zero exit with exactly one non-empty stderr line, ``ganforge: error: ...``,
    that mentions every fragment (case-insensitive)."""
    lines = visible_lines(proc.stderr)
    assert proc.returncode != 0, f"exit code 0; stdout={proc.stdout!r}"
    assert len(lines) == 1, "expected one stderr line, got:\n" + proc.stderr
    assert lines[0].startswith("ganforge: error:"), lines[0]
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def one_line_error():
    return assert_one_line_error


# -- what a change inside a generator can reach -------------------------------------------


def dcgan_reach(cells: torch.Tensor, upsamplings: int) -> torch.Tensor:
    """Where a DCGAN's 4x4, stride 2, padding 1 transposed convolutions can carry a change
    in ``cells`` (bool (h, w)): computed from the architecture, not by running a generator."""
    x = cells.float()[None, None]
    for _ in range(upsamplings):
        x = (torch.nn.functional.conv_transpose2d(x, torch.ones(1, 1, 4, 4), stride=2, padding=1)
             > 0).float()  # fmt: skip
    return x[0, 0] > 0


@pytest.fixture(scope="session")
def reach():
    return dcgan_reach


# -- comparing saved states ------------------------------------------------------------------


def assert_same_state(a: Any, b: Any, where: str = "state") -> None:
    """Recursively: tensors ``torch.equal`` (same dtype and shape), everything else ``==``."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="session")
def same_state():
    return assert_same_state


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="session")
def folder_snapshot():
    return snapshot
