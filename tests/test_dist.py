"""Several processes (torch.distributed, gloo on the CPU): the same run as one process, only
rank 0 writes, exact resume after Ctrl-C or a killed process, one-line errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ganforge.data.sampler import EpochSampler
from ganforge.train import dist
from ganforge.train.checkpoint import load_checkpoint

# The default recipe (k-means clusters, relativistic loss, lazy R1 and R2, batch norm in
# both networks), tiny. 16 images a batch: 8 on each of 2 processes.
COMMON = ["train", "--dataset", "digits", "--device", "cpu", "--amp", "off", "--width", "8",
          "--z-dim", "8", "--clusters", "5", "--batch-size", "16", "--steps", "300",
          "--log-every", "10", "--sample-every", "100", "--checkpoint-every", "20",
          "--quiet"]  # fmt: skip
# Float32 sums over 16 images in two halves instead of one pass differ in the last bits
# (about 1e-7); measured after 300 steps of this game: 2.2e-7.
TOLERANCE = 1e-4
WEIGHTS = ("players", "ema")


def _command(args) -> list[str]:
    return [sys.executable, "-m", "ganforge", *map(str, args)]


def _start(args, env, cwd) -> subprocess.Popen[str]:
    return subprocess.Popen(_command(args), env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def _close(a, b) -> float:
    """The largest difference between two nested states of tensors."""
    if isinstance(a, torch.Tensor):
        assert a.shape == b.shape and a.dtype == b.dtype
        return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
    if isinstance(a, dict):
        assert set(a) == set(b)
        return max((_close(a[k], b[k]) for k in a), default=0.0)
    assert a == b
    return 0.0


def _files(folder: Path) -> list[str]:
    names = (str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return sorted("tb/events" if n.startswith("tb/events") else n for n in names)


@pytest.fixture(scope="module")
def two(tmp_path_factory, cli_env, cli_ok) -> Path:
    """An uninterrupted run on 2 processes."""
    out = tmp_path_factory.mktemp("two") / "run"
    cli_ok([*COMMON, "--nproc", "2", "--out", out], cli_env, out.parent)
    return out


def test_sampler_shares_make_the_global_batch():
    whole = EpochSampler(20, 8, seed=3)
    halves = [EpochSampler(20, 8, seed=3, rank=r, world=2) for r in range(2)]
    for _ in range(7):  # across epoch boundaries
        assert torch.equal(whole.next(), torch.cat([h.next() for h in halves]))
    assert halves[0].state_dict() == halves[1].state_dict() == whole.state_dict()
    with pytest.raises(ValueError, match="multiple of 3"):
        EpochSampler(20, 8, seed=3, rank=0, world=3)


def test_shared_noise_in_segments_is_the_plain_draw_on_one_process():
    a, b = dist.SharedRandom(5, torch.device("cpu")), dist.SharedRandom(5, torch.device("cpu"))
    with b.segments(3):
        assert torch.equal(a.randn(6, 4), b.randn(6, 4))
    assert torch.equal(a.rand(2), b.rand(2))
    assert dist.rank_seed(0, 0) != dist.rank_seed(0, 1) != dist.rank_seed(1, 1)


def test_two_processes_train_the_run_one_process_trains(two, tmp_path, cli_env, cli_ok):
    one = tmp_path / "one"
    cli_ok([*COMMON, "--out", one], cli_env, tmp_path)
    a, b = load_checkpoint(one), load_checkpoint(two)
    assert a["step"] == b["step"] == 300 and b["world_size"] == 2
    assert max(_close(a[part], b[part]) for part in WEIGHTS) < TOLERANCE
    same = {k: a["recipe"][k] for k in ("sampler", "latent", "clusters")}
    assert _close(same, {k: b["recipe"][k] for k in same}) == 0
    # Rank 0 alone wrote: the folder holds exactly a single-process run's files.
    assert _files(one) == _files(two)


def test_two_processes_ctrl_c_then_resume_is_bitwise_the_uninterrupted_run(
    two, tmp_path, cli_env, cli_ok, same_state
):
    cut = tmp_path / "cut"
    proc = _start([*COMMON, "--nproc", "2", "--out", cut], cli_env, tmp_path)
    _wait_for(cut / "checkpoints" / "last.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    state = load_checkpoint(cut)
    assert 20 <= state["step"] < 300 and len(state["rng_ranks"]) == 2
    assert f"interrupted at step {state['step']}" in stderr and "--resume" in stderr
    cli_ok(["train", "--resume", cut, "--nproc", "2", "--quiet"], cli_env, tmp_path)
    a, b = load_checkpoint(two), load_checkpoint(cut)
    for part in (*WEIGHTS, "optimizers", "recipe", "rng", "rng_ranks"):
        same_state(a[part], b[part], part)


def test_a_killed_process_stops_the_job_with_one_line_and_resume_is_exact(
    two, tmp_path, cli_env, cli_ok, same_state, one_line_error
):
    cut = tmp_path / "cut"
    proc = _start([*COMMON, "--nproc", "2", "--out", cut], cli_env, tmp_path)
    _wait_for(cut / "checkpoints" / "last.pt", proc)
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    pids = [int(p) for p in workers.stdout.split()]
    assert len(pids) == 2, workers
    killed = time.monotonic()
    os.kill(pids[-1], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=90)
    assert time.monotonic() - killed < 60
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    one_line_error(done, "killed by SIGKILL", "--resume")
    for pid in pids:  # no process is left behind
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    step = load_checkpoint(cut)["step"]  # the last checkpoint loads
    assert 20 <= step < 300
    cli_ok(["train", "--resume", cut, "--nproc", "2", "--quiet"], cli_env, tmp_path)
    a, b = load_checkpoint(two), load_checkpoint(cut)
    for part in (*WEIGHTS, "optimizers", "recipe", "rng_ranks"):
        same_state(a[part], b[part], part)


def test_a_two_process_run_continues_on_one_with_a_note(two, tmp_path, cli_env):
    # The recipe draws nothing per process, so the continued run stays within the
    # tolerance of the uninterrupted one.
    # The first part stops at step 100 by its own --steps (a Ctrl-C here raced the end of
    # a run this small: on a fast machine it finished first and there was nothing to
    # continue).
    part = tmp_path / "part"
    first = [*COMMON[: COMMON.index("--steps")], "--steps", "100",
             *COMMON[COMMON.index("--steps") + 2 :]]  # fmt: skip
    done = subprocess.run(_command([*first, "--nproc", "2", "--out", part]), env=cli_env,
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    cut = load_checkpoint(part)
    assert cut["step"] == 100 and cut["world_size"] == 2
    resumed = subprocess.run(_command(["train", "--resume", part, "--steps", "300"]),
                             env=cli_env, cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing a run of 2 process(es) on 1" in resumed.stdout
    a, b = load_checkpoint(two), load_checkpoint(part)
    assert b["world_size"] == 1 and "rng_ranks" not in b
    assert max(_close(a[p], b[p]) for p in WEIGHTS) < TOLERANCE


def test_a_batch_that_does_not_split_is_one_line(tmp_path, cli_env, one_line_error):
    args = [*COMMON[:-1], "--batch-size", "15", "--nproc", "2", "--out", tmp_path / "odd"]
    proc = subprocess.run(_command(args), env=cli_env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    one_line_error(proc, "multiple of 2")
    assert not (tmp_path / "odd").exists()


SEMI = """
import sys, torch
from ganforge.semisupervised import SemiSupervisedGAN
from ganforge.train import dist

g = torch.Generator().manual_seed(0)
x = torch.randint(0, 256, (120, 1, 6, 6), generator=g, dtype=torch.uint8)
y = torch.arange(120) % 3
model = SemiSupervisedGAN(epochs=2, batch_size=20, units=(16, 8), generator_units=(16,),
                          z_dim=4, device="cpu", progress=False)
model.fit(x[:30], y[:30], x, log_every=3)
if dist.is_writer():
    torch.save({"classifier": model.classifier_.state_dict(),
                "generator": model.generator_.state_dict(),
                "history": model.history_}, sys.argv[1])
"""


def test_semisupervised_game_on_two_processes_is_the_one_process_game(tmp_path, cli_env):
    script = tmp_path / "semi.py"
    script.write_text(textwrap.dedent(SEMI))
    one, two_ = tmp_path / "one.pt", tmp_path / "two.pt"
    subprocess.run([sys.executable, script, one], env=cli_env, check=True, timeout=120)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", script, two_]  # fmt: skip
    proc = subprocess.run(torchrun, env=cli_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    a, b = torch.load(one, weights_only=True), torch.load(two_, weights_only=True)
    assert max(_close(a[k], b[k]) for k in ("classifier", "generator")) < TOLERANCE
    for ra, rb in zip(a["history"], b["history"], strict=True):
        assert ra["update"] == rb["update"]
        assert abs(ra["feature_matching"] - rb["feature_matching"]) < 1e-3


def test_robust_training_on_two_processes_is_the_one_process_training(tmp_path, cli_env, cli_ok):
    # Standard training draws nothing per process (attacks' random starts would).
    args = ["robust-train", "--dataset", "digits", "--network", "mlp", "--method", "standard",
            "--epochs", "2", "--batch-size", "32", "--held-out", "200", "--device", "cpu",
            "--quiet"]  # fmt: skip
    cli_ok([*args, "--out", tmp_path / "one"], cli_env, tmp_path)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", "2", "-m", "ganforge", *args,
                "--out", tmp_path / "two"]  # fmt: skip
    proc = subprocess.run(torchrun, env=cli_env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("mlp trained with standard") == 1  # rank 0 alone reports
    a, b = (torch.load(tmp_path / r / "model.pt", weights_only=True) for r in ("one", "two"))
    assert _close(a["state_dict"], b["state_dict"]) < TOLERANCE
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
