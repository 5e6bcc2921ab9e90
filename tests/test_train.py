"""The training loop, exact resume, reproducibility and checkpoint safety."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import ganforge.io.safe as safe_module
from ganforge.errors import GanforgeError
from ganforge.train import Trainer, resume, train
from ganforge.train.checkpoint import FORMAT, LAST, load_checkpoint, save_checkpoint
from ganforge.train.metrics_log import read_metrics

TENSOR_PARTS = ("players", "ema", "optimizers", "scalers", "recipe", "rng", "step")


def test_discriminator_learns_to_tell_real_from_fake(tmp_path: Path, make_config):
    cfg = make_config(train={"steps": 20, "batch_size": 64, "log_every": 5})
    result = Trainer(cfg, tmp_path / "run", progress=False).run()
    assert result.steps == 20 and not result.interrupted
    stats = result.last_stats
    assert stats["d_real"] > stats["d_fake"] + 0.04, stats
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert rows[-1]["d_real"] == pytest.approx(stats["d_real"])
    gaps = [r["d_real"] - r["d_fake"] for r in rows]
    assert gaps[-1] > gaps[0]  # the gap opens as D trains
    for r in rows:
        assert 0 < r["d_fake"] < 1 and 0 < r["d_real"] < 1


def test_run_folder_contents(uncond_run: Path):
    assert (uncond_run / "config.yaml").is_file()
    assert (uncond_run / LAST).is_file()
    assert (uncond_run / "samples.png").is_file()
    assert (uncond_run / "losses.png").is_file()
    assert any((uncond_run / "tb").iterdir())
    # sample_every=4 over 6 steps: step 4, plus the final grid.
    grids = sorted(p.name for p in (uncond_run / "samples").iterdir())
    assert grids == ["step_000004.png", "step_000006.png"]
    state = load_checkpoint(uncond_run)
    assert state["step"] == 6
    assert state["recipe"]["data_spec"] == {"channels": 1, "image_size": 8, "num_classes": 10}


def test_checkpoint_holds_only_plain_values(uncond_run: Path):
    state = torch.load(uncond_run / LAST, map_location="cpu", weights_only=True)
    for key in ("config", "step", "players", "ema", "optimizers", "recipe", "rng"):
        assert key in state
    assert state["config"]["model"]["network"] == "dcgan"


# -- exact resume ---------------------------------------------------------------------------


@pytest.mark.parametrize("network", ["dcgan", "mlp2014", "dcgan-cond", "dcgan-clusters"])
def test_resume_is_identical_to_an_uninterrupted_run(
    tmp_path: Path, make_config, network, same_state
):
    n = 7
    # Checkpoints at 5, 10; sample grids at 3, 6, 9, 12; logs at 4, 8, 12: none at n.
    # dcgan-clusters: its own loss, with lazy R1 and R2 phases (every 4 steps), and clusters.
    model = {"network": network, "width": 40 if network.startswith("mlp") else 8}
    loss = {"name": None} if network == "dcgan-clusters" else {}
    if network == "dcgan-clusters":
        model["clusters"] = 6
    cfg = make_config(
        model=model,
        loss=loss,
        train={"steps": 2 * n, "checkpoint_every": 5, "sample_every": 3, "log_every": 4},
    )
    one_go = train(cfg, tmp_path / "one", progress=False)
    assert one_go.steps == 2 * n

    cfg_half = make_config(
        model=model,
        loss=loss,
        train={"steps": n, "checkpoint_every": 5, "sample_every": 3, "log_every": 4},
    )
    first = train(cfg_half, tmp_path / "two", progress=False)
    assert first.steps == n
    assert load_checkpoint(tmp_path / "two")["step"] == n
    second = resume(tmp_path / "two", {"train": {"steps": 2 * n}}, progress=False)
    assert second.steps == 2 * n

    a, b = load_checkpoint(tmp_path / "one"), load_checkpoint(tmp_path / "two")
    assert a["step"] == b["step"] == 2 * n
    for part in TENSOR_PARTS:
        same_state(a[part], b[part], part)
    # The user-visible result agrees too: the final sample grid is byte-identical.
    assert (tmp_path / "one" / "samples.png").read_bytes() == (
        tmp_path / "two" / "samples.png"
    ).read_bytes()
    # The resumed run's log has no duplicated steps.
    steps = [r["step"] for r in read_metrics(tmp_path / "two")]
    assert steps == sorted(set(steps)) and steps[-1] == 2 * n


def test_resume_from_an_older_checkpoint_rewrites_the_log(tmp_path: Path, make_config):
    """A run that died after logging past its last checkpoint continues from the checkpoint
    and rewrites the later log lines instead of duplicating them."""
    run, mid = tmp_path / "run", tmp_path / "mid"
    train(make_config(train={"steps": 6, "log_every": 1}), run, progress=False)
    train(make_config(train={"steps": 3, "log_every": 1}), mid, progress=False)
    shutil.copyfile(mid / LAST, run / LAST)  # as if the process died after step 6's log line
    assert [r["step"] for r in read_metrics(run)] == [1, 2, 3, 4, 5, 6]
    resume(run, {"train": {"steps": 8}}, progress=False)
    assert [r["step"] for r in read_metrics(run)] == list(range(1, 9))


def test_resume_of_a_finished_run_is_a_no_op(tmp_path: Path, make_config, same_state):
    cfg = make_config(train={"steps": 3})
    train(cfg, tmp_path / "run", progress=False)
    before = load_checkpoint(tmp_path / "run")
    result = resume(tmp_path / "run", progress=False)
    assert result.steps == 3
    after = load_checkpoint(tmp_path / "run")
    for part in TENSOR_PARTS:
        same_state(before[part], after[part], part)


def test_resume_with_more_steps_extends_a_run_configured_in_epochs(tmp_path: Path, make_config):
    cfg = make_config(data={"limit": 200}, train={"batch_size": 50, "epochs": 1.0})
    assert train(cfg, tmp_path / "run", progress=False).steps == 4
    assert resume(tmp_path / "run", {"train": {"steps": 6}}, progress=False).steps == 6


# -- reproducibility ------------------------------------------------------------------------


def test_same_seed_gives_identical_weights(tmp_path: Path, make_config, same_state):
    for name in ("a", "b"):
        train(make_config(train={"steps": 4, "seed": 5}), tmp_path / name, progress=False)
    train(make_config(train={"steps": 4, "seed": 6}), tmp_path / "c", progress=False)
    a, b, c = (load_checkpoint(tmp_path / n) for n in "abc")
    for part in ("players", "ema", "optimizers"):
        same_state(a[part], b[part], part)
    ga, gc = a["players"]["generator"], c["players"]["generator"]
    assert any(not torch.equal(ga[k], gc[k]) for k in ga)


def test_train_refuses_to_overwrite_a_run(uncond_run: Path, make_config, folder_snapshot):
    before = folder_snapshot(uncond_run)
    with pytest.raises(GanforgeError, match="already holds a run"):
        train(make_config(), uncond_run, progress=False)
    assert folder_snapshot(uncond_run) == before


def test_batch_larger_than_the_data_is_an_error_before_any_output(tmp_path: Path, make_config):
    with pytest.raises(GanforgeError, match="larger"):
        train(make_config(data={"limit": 10}, train={"batch_size": 32}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_epochs_decide_the_number_of_steps(tmp_path: Path, make_config):
    # 200 images in batches of 50: 4 steps an epoch; 1.5 epochs = 6 steps.
    cfg = make_config(data={"limit": 200}, train={"batch_size": 50, "epochs": 1.5})
    result = train(cfg, tmp_path / "run", progress=False)
    assert result.steps == 6


# -- checkpoint safety ----------------------------------------------------------------------


def test_interrupted_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, {"step": 1, "weights": torch.ones(3)})
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"\x00garbage")
        raise OSError("disk full")

    monkeypatch.setattr(safe_module.torch, "save", dying_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "weights": torch.zeros(3)})
    monkeypatch.setattr(safe_module.torch, "save", real_save)

    state = load_checkpoint(path)
    assert state["step"] == 1
    assert torch.equal(state["weights"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_checkpoint_write_replaces_the_old_one(tmp_path: Path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Payload:
    """Unpickling this creates a folder: proof that the checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("container", ["torch.save", "pickle"])
def test_checkpoint_that_would_run_code_is_rejected(tmp_path: Path, container: str):
    def craft(path: Path, marker: Path) -> None:
        state = {"format": FORMAT, "step": 1, "payload": _Payload(marker)}
        if container == "torch.save":
            torch.save(state, path)
        else:
            path.write_bytes(pickle.dumps(state))

    # Control: the crafted file really does run code when loaded unsafely.
    control, control_marker = tmp_path / "control.pt", tmp_path / "control-ran"
    craft(control, control_marker)
    if container == "torch.save":
        torch.load(control, weights_only=False)
    else:
        pickle.loads(control.read_bytes())
    assert control_marker.is_dir()

    evil, marker = tmp_path / "evil.pt", tmp_path / "code-ran"
    craft(evil, marker)
    with pytest.raises(GanforgeError, match="evil.pt"):
        load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a checkpoint at all", id="text"),
        pytest.param(bytes(range(256)) * 8, id="bytes"),
    ],
)
def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, content: bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(GanforgeError, match="last.pt"):
        load_checkpoint(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path, uncond_run: Path):
    data = (uncond_run / LAST).read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GanforgeError, match="cut.pt"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"\x80", id="pickle-proto-cut"),
        pytest.param(b".", id="pickle-stop"),
        pytest.param(b"J\x00", id="pickle-int-cut"),
    ],
)
def test_checkpoint_that_starts_like_a_pickle_is_a_clear_error(tmp_path: Path, content: bytes):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(GanforgeError, match="last.pt"):
        load_checkpoint(path)


def test_non_ganforge_checkpoint_is_rejected(tmp_path: Path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, path)
    with pytest.raises(GanforgeError, match="not a ganforge checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_and_empty_run_folder(tmp_path: Path):
    with pytest.raises(GanforgeError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    with pytest.raises(GanforgeError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"train": {"seed": 5}}, "train.seed"),
        ({"train": {"batch_size": 16}}, "train.batch_size"),
        ({"loss": {"name": "minimax"}}, "loss.name"),
        ({"model": {"network": "mlp2014"}}, "'dcgan'"),
    ],
    ids=["seed", "batch-size", "loss", "network"],
)
def test_resume_refuses_changes_that_break_continuing_exactly(
    tmp_path: Path, make_config, overrides, fragment
):
    train(make_config(), tmp_path / "run", progress=False)
    with pytest.raises(GanforgeError, match=fragment):
        resume(tmp_path / "run", overrides, progress=False)
    # The same value as the checkpoint's is not a change.
    same = {"train": {"seed": 0, "steps": 7}}
    assert resume(tmp_path / "run", same, progress=False).steps == 7


def test_resume_of_a_checkpoint_file_asks_for_the_run_folder(tmp_path: Path, make_config):
    train(make_config(), tmp_path / "run", progress=False)
    with pytest.raises(GanforgeError, match="run folder"):
        resume(tmp_path / "run" / LAST, progress=False)


def test_divergence_stops_with_an_error_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, make_config, monkeypatch
):
    train(make_config(train={"steps": 4}), tmp_path / "run", progress=False)
    from ganforge.losses import NonSaturatingLoss

    monkeypatch.setattr(
        NonSaturatingLoss, "g_value", lambda self, real, fake: fake.sum() * float("nan")
    )
    with pytest.raises(GanforgeError, match="diverged"):
        resume(tmp_path / "run", {"train": {"steps": 12}}, progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert state["step"] == 4
    assert all(
        torch.isfinite(t).all()
        for t in state["players"]["generator"].values()
        if t.is_floating_point()
    )


def test_run_files_get_the_usual_permissions(tmp_path: Path, make_config):
    old = os.umask(0o022)
    try:
        train(make_config(), tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for name in ("config.yaml", "samples.png", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_and_saves_finite_weights(tmp_path: Path, make_config, amp: str):
    result = train(make_config(train={"amp": amp}), tmp_path / "run", progress=False)
    assert result.steps == 6
    state = load_checkpoint(tmp_path / "run")
    ema = state["ema"]["generator"]
    assert all(torch.isfinite(t).all() for t in ema.values() if t.is_floating_point())
    assert ema["project.0.weight"].dtype == torch.float32  # weights stay float32


MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


@pytest.mark.skipif(not MNIST_DIR.exists(), reason="MNIST files not beside the checkout")
def test_eval_every_logs_metrics_keeps_the_best_checkpoint_and_resumes_exactly(
    tmp_path: Path, make_config, same_state
):
    cfg = make_config(
        data={"name": "mnist", "root": str(MNIST_DIR), "limit": 512},
        train={"steps": 4, "eval_every": 2, "eval_samples": 40, "checkpoint_every": 3},
    )
    train(cfg, tmp_path / "straight", progress=False)
    rows = [r for r in read_metrics(tmp_path / "straight") if "eval/fid" in r]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["eval/fid"] > 0 and 0 <= r["eval/precision"] <= 1 for r in rows)
    best = load_checkpoint(tmp_path / "straight" / "checkpoints" / "best.pt")
    assert best["recipe"]["best_fid"] == pytest.approx(min(r["eval/fid"] for r in rows))

    half = make_config(
        data={"name": "mnist", "root": str(MNIST_DIR), "limit": 512},
        train={"steps": 2, "eval_every": 2, "eval_samples": 40, "checkpoint_every": 3},
    )
    train(half, tmp_path / "resumed", progress=False)
    resume(tmp_path / "resumed", {"train": {"steps": 4}}, progress=False)
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    for part in ("players", "ema"):
        same_state(a[part], b[part], part)
    assert a["recipe"]["best_fid"] == b["recipe"]["best_fid"]


def test_eval_every_needs_mnist_shaped_data_and_writes_nothing_otherwise(
    tmp_path: Path, make_config
):
    with pytest.raises(GanforgeError, match="28x28"):
        train(make_config(train={"eval_every": 2}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
