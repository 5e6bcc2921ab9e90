"""Hostile values for every command: each must end in one line, ``ganforge: error: ...``, a
non-zero exit and nothing written (../shared/hostile-cases.md is the minimum)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganforge.cli import main

HUGE = str(10**23)
TRAIN = ["train", "--dataset", "digits", "--device", "cpu", "--quiet"]
ROBUST = ["robust-train", "--dataset", "digits", "--device", "cpu", "--quiet"]
SEMI = ["semisupervised", "--no-download", "--quiet"]

# (arguments, a fragment of the message); OUT stands for a fresh output path.
CASES = {
    "train lr nan": ([*TRAIN, "--lr", "nan"], "optim.lr"),
    "train lr negative": ([*TRAIN, "--lr", "-1"], "optim.lr"),
    "train lr inf": ([*TRAIN, "--lr", "inf"], "optim.lr"),
    "train beta1 nan": ([*TRAIN, "--beta1", "nan"], "beta1"),
    "train ema nan": ([*TRAIN, "--ema-decay", "nan"], "ema_decay"),
    "train ema one": ([*TRAIN, "--ema-decay", "1"], "ema_decay"),
    "train steps zero": ([*TRAIN, "--steps", "0"], "steps"),
    "train steps negative": ([*TRAIN, "--steps", "-5"], "steps"),
    "train epochs nan": ([*TRAIN, "--epochs", "nan"], "epochs"),
    "train batch zero": ([*TRAIN, "--batch-size", "0"], "batch_size"),
    "train batch huge": ([*TRAIN, "--batch-size", "100000000"], "batch size"),
    "train k zero": ([*TRAIN, "--k", "0"], "train.k"),
    "train seed negative": ([*TRAIN, "--seed", "-1"], "seed"),
    "train seed huge": ([*TRAIN, "--seed", HUGE], "seed"),
    "train width zero": ([*TRAIN, "--width", "0"], "width"),
    "train z huge": ([*TRAIN, "--z-dim", "1000000000000"], "GiB"),
    "train image size for digits": ([*TRAIN, "--image-size", "37"], "folder dataset"),
    "train r1 negative": ([*TRAIN, "--r1", "-1"], "loss.r1"),
    "train clusters one": ([*TRAIN, "--clusters", "1"], "model.clusters"),
    "train clusters on labels": (
        [*TRAIN, "--network", "dcgan-cond", "--clusters", "5"],
        "clusters",
    ),
    "train clusters above images": (
        [*TRAIN, "--clusters", "500", "--limit", "100"],
        "--clusters 0",
    ),
    "train gp inf": ([*TRAIN, "--gp", "inf"], "loss.gp"),
    "train augment": ([*TRAIN, "--augment", "flip"], "augmentation"),
    "train network": ([*TRAIN, "--network", "stylegan"], "stylegan"),
    "train loss": ([*TRAIN, "--loss", "wgan"], "wgan"),
    "train dataset": (["train", "--dataset", "imagenet"], "imagenet"),
    "train device": ([*TRAIN, "--device", "tpu"], "device"),
    "train optimizer": ([*TRAIN, "--optimizer", "lion"], "lion"),
    "train amp": ([*TRAIN, "--amp", "fp8"], "fp8"),
    "train limit zero": ([*TRAIN, "--limit", "0"], "limit"),
    "train eval every zero": ([*TRAIN, "--eval-every", "0"], "eval_every"),
    "train checkpoint every zero": ([*TRAIN, "--checkpoint-every", "0"], "checkpoint_every"),
    "train steps not a number": ([*TRAIN, "--steps", "ten"], "--steps"),
    "train config missing": ([*TRAIN, "--config", "/no/such.yaml"], "does not exist"),
    "train config a folder": ([*TRAIN, "--config", "/tmp"], "cannot be read"),
    "train resume missing": (["train", "--resume", "/no/such/run"], "not one"),
    "robust eps nan": ([*ROBUST, "--eps", "nan"], "finite"),
    "robust lr nan": ([*ROBUST, "--lr", "nan"], "finite"),
    "robust epochs zero": ([*ROBUST, "--epochs", "0"], "positive"),
    "robust mix": ([*ROBUST, "--mix", "2"], "mix"),
    "robust batch zero": ([*ROBUST, "--batch-size", "0"], "positive"),
    "robust seed huge": ([*ROBUST, "--seed", HUGE], "seed"),
    "robust method": ([*ROBUST, "--method", "madry"], "madry"),
    "robust network": ([*ROBUST, "--network", "resnet"], "resnet"),
    "semi epochs nan": ([*SEMI, "--epochs", "nan"], "--epochs"),
    "semi lr negative": ([*SEMI, "--lr", "-1"], "--lr"),
    "semi labels": ([*SEMI, "--labels", "15"], "multiples"),
    "semi seeds zero": ([*SEMI, "--seeds", "0"], "--seeds"),
    "semi first seed negative": ([*SEMI, "--first-seed", "-1"], "--first-seed"),
    "semi batch one": ([*SEMI, "--batch-size", "1"], "--batch-size"),
    "semi units zero": ([*SEMI, "--units", "0"], "--units"),
    "attack eps nan": (["attack", "--model", "/no/model.pt", "--eps", "nan"], ""),
    "attack model missing": (["attack", "--model", "/no/model.pt"], "does not exist"),
    "reproduce unknown": (["reproduce", "goodfellow2099"], "goodfellow2099"),
    "reproduce steps zero": (["reproduce", "goodfellow2014", "--steps", "0"], "steps"),
    "classify model missing": (["classify", "/no/model.pt", "/tmp"], "does not exist"),
    "evaluate source missing": (["evaluate", "/no/such/run"], "/no/such/run"),
}


def _outcome(args: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main(args)
    except SystemExit as exit_:  # usage errors leave through argparse
        code = exit_.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_values_give_one_line_and_write_nothing(name: str, tmp_path: Path, capsys):
    args, fragment = CASES[name]
    out = tmp_path / "out"
    wants_out = args[0] in ("train", "robust-train", "semisupervised", "reproduce", "classify")
    if wants_out and "--resume" not in args:
        args = [*args, "--out", str(out)]
    code, err = _outcome(args, capsys)
    assert code != 0, name
    assert len(err) == 1 and err[0].startswith("ganforge: error:"), err
    assert fragment.lower() in err[0].lower(), err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["-n", "0"], "at least 1"),
        (["-n", "100000000000"], "GiB"),
        (["--seed", "-1"], "--seed"),
        (["--seed", HUGE], "--seed"),
        (["--class", "3"], "conditional"),
    ],
)
def test_hostile_sample_requests(uncond_run, tmp_path, capsys, extra, fragment):
    out = tmp_path / "grid.png"
    code, err = _outcome(["sample", str(uncond_run), "--out", str(out), *extra], capsys)
    assert code != 0 and len(err) == 1 and fragment in err[0], err
    assert not out.exists()


def test_a_huge_walk_is_refused_from_an_estimate(uncond_run, tmp_path, capsys):
    out = tmp_path / "walk.gif"
    code, err = _outcome(["interpolate", str(uncond_run), "--steps", "100000000000",
                          "--out", str(out)], capsys)  # fmt: skip
    assert code != 0 and len(err) == 1 and "GiB" in err[0], err
    assert not out.exists()


def test_an_existing_output_file_is_replaced_only_with_force(uncond_run, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    code, err = _outcome(["sample", str(uncond_run), "--out", str(notes), "--format", "npz"],
                         capsys)  # fmt: skip
    assert code != 0 and "--force" in err[0]
    assert notes.read_text() == "my notes"
    walk = tmp_path / "walk.gif"
    walk.write_bytes(b"mine")
    code, err = _outcome(["interpolate", str(uncond_run), "--out", str(walk)], capsys)
    assert code != 0 and "--force" in err[0] and walk.read_bytes() == b"mine"
    code, _ = _outcome(["interpolate", str(uncond_run), "--out", str(walk), "--force"], capsys)
    assert code == 0 and walk.read_bytes()[:3] == b"GIF"


def test_a_checkpoint_file_outside_a_run_samples_beside_itself(uncond_run, tmp_path, capsys):
    lone = tmp_path / "lone" / "model.pt"
    lone.parent.mkdir()
    lone.write_bytes((uncond_run / "checkpoints" / "last.pt").read_bytes())
    code, _ = _outcome(["sample", str(lone), "-n", "4"], capsys)
    assert code == 0
    assert (tmp_path / "lone" / "sampled" / "seed0.png").is_file()
    assert not (tmp_path / "sampled").exists()


def test_an_unexpected_failure_is_one_line_and_debug_shows_the_traceback(
    monkeypatch, capsys, tmp_path
):
    import ganforge.cli.train as train_command

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train_command, "run", broken)
    code, err = _outcome(["train", "--out", str(tmp_path / "x")], capsys)
    assert code == 1 and len(err) == 1 and "unexpected ZeroDivisionError: a bug" in err[0]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "train", "--out", str(tmp_path / "x")])


# -- files a user (or an attacker) hands over --------------------------------------------------

FORMAT_1 = Path(__file__).parent / "data" / "format1"


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_skipped_or_refused_in_one_line(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    _png_claiming(folder / "bomb.png", 40000, 40000)
    out = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--data-dir", str(folder), "--image-size", "8",
            "--quiet", "--out", str(out)]  # fmt: skip
    code, err = _outcome(args, capsys)
    assert code != 0 and len(err) == 1 and "could be read" in err[0], err
    assert not out.exists()
    code, err = _outcome(["classify", str(FORMAT_1 / "semisupervised"), str(folder),
                          "--out", str(tmp_path / "p.csv")], capsys)  # fmt: skip
    assert code != 0 and len(err) == 1 and "could be read" in err[0], err


def test_file_names_that_are_not_utf8_are_classified(tmp_path, capsys):
    import os

    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    name = os.fsdecode(b"digit-\xff.png")
    Image.new("L", (8, 8), 128).save(folder / name)
    out = tmp_path / "p.csv"
    code, err = _outcome(["classify", str(FORMAT_1 / "semisupervised"), str(folder),
                          "--out", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    assert b"digit-\xff.png" in out.read_bytes()


def test_a_huge_image_size_is_refused_from_an_estimate(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / "one.png")
    out = tmp_path / "run"
    code, err = _outcome(["train", "--dataset", "folder", "--data-dir", str(folder),
                          "--image-size", "100000", "--out", str(out)], capsys)  # fmt: skip
    assert code != 0 and len(err) == 1 and "GiB" in err[0], err
    assert not out.exists()


def test_mnist_files_of_other_image_sizes_are_refused(tmp_path, capsys):
    import gzip
    import struct

    data = tmp_path / "mnist"
    data.mkdir()
    n = 4
    for split in ("train", "t10k"):
        images = struct.pack(">IIII", 0x803, n, 14, 56) + bytes(n * 14 * 56)
        labels = struct.pack(">II", 0x801, n) + bytes(n)
        (data / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (data / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    out = tmp_path / "run"
    code, err = _outcome(["train", "--data-dir", str(data), "--no-download", "--quiet",
                          "--out", str(out)], capsys)  # fmt: skip
    assert code != 0 and len(err) == 1 and "14x56" in err[0], err
    assert not out.exists()


def test_attack_refuses_a_nan_epsilon_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "report"
    code, err = _outcome(["attack", "--model", str(FORMAT_1 / "robust"), "--dataset", "digits",
                          "--eps", "nan", "--quiet", "--out", str(out)], capsys)  # fmt: skip
    assert code != 0 and len(err) == 1 and "finite" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("damage", ["config is a string", "no ema", "z_dim 10^12"])
def test_damaged_checkpoints_are_one_line_errors(uncond_run, tmp_path, capsys, damage):
    import torch

    state = torch.load(uncond_run / "checkpoints" / "last.pt", weights_only=True)
    if damage == "config is a string":
        state["config"] = "dcgan"
    elif damage == "no ema":
        del state["ema"]
    else:
        state["config"]["model"]["z_dim"] = 10**12
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    code, err = _outcome(["sample", str(bad), "--out", str(tmp_path / "g.png")], capsys)
    assert code != 0 and len(err) == 1 and err[0].startswith("ganforge: error:"), err
    assert not (tmp_path / "g.png").exists()


def test_a_full_disk_while_checkpointing_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    import torch

    import ganforge.io.safe as safe
    from ganforge.io.safe import save_state

    save_state(tmp_path / "last.pt", {"step": 1})

    def full(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed")

    monkeypatch.setattr(safe.torch, "save", full)
    with pytest.raises(OSError, match="cannot write"):
        save_state(tmp_path / "last.pt", {"step": 2})
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_attack_replaces_a_report_only_with_force(tmp_path, capsys):
    out = tmp_path / "report"
    args = ["attack", "--model", str(FORMAT_1 / "robust"), "--dataset", "digits",
            "--eps", "0.1", "--steps", "2", "--restarts", "1", "-n", "20", "--quiet",
            "--out", str(out)]  # fmt: skip
    assert _outcome(args, capsys)[0] == 0
    before = (out / "robustness.json").read_bytes()
    code, err = _outcome([*args[:-2], "--eps", "0.2", "--out", str(out)], capsys)
    assert code != 0 and "--force" in err[0]
    assert (out / "robustness.json").read_bytes() == before
    assert _outcome([*args, "--force"], capsys)[0] == 0


def test_a_data_path_stored_in_a_checkpoint_is_never_downloaded_into(tmp_path, capsys):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(FORMAT_1 / "gan", run)
    target = tmp_path / "elsewhere"  # where a crafted checkpoint points
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    state["config"]["data"].update(name="mnist", root=str(target), download=True)
    torch.save(state, run / "checkpoints" / "last.pt")
    code, err = _outcome(["train", "--resume", str(run), "--steps", "6", "--quiet"], capsys)
    assert code != 0 and len(err) == 1 and "--data-dir" in err[0], err
    assert not target.exists()
    target.mkdir()  # an existing folder without MNIST: read, and nothing created in it
    code, err = _outcome(["train", "--resume", str(run), "--steps", "6", "--quiet"], capsys)
    assert code != 0 and len(err) == 1 and "missing" in err[0], err
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(
    "flags", [["--num-samples", "100000000000"], ["--eval-every", "1", "--eval-samples", HUGE]]
)
def test_huge_sample_grids_and_evaluations_are_refused_up_front(tmp_path, capsys, flags):
    out = tmp_path / "run"
    code, err = _outcome([*TRAIN, *flags, "--out", str(out)], capsys)
    assert code != 0 and len(err) == 1, err
    assert not out.exists()


# -- every numeric flag of every training command, generated from the configs ----------------


def _numeric_cases() -> list[tuple[list[str], str]]:
    import dataclasses

    from ganforge.config import RunConfig
    from ganforge.robustness import RobustTrainConfig
    from ganforge.semisupervised import Settings

    def fields(cfg_type):
        for f in dataclasses.fields(cfg_type):
            factory = f.default_factory
            if isinstance(factory, type) and dataclasses.is_dataclass(factory):
                yield from dataclasses.fields(factory)
            elif f.metadata.get("cli", False):
                yield f

    cases = []
    for command, cfg_type in ((TRAIN, RunConfig), (ROBUST, RobustTrainConfig),
                              (SEMI, Settings)):  # fmt: skip
        for f in fields(cfg_type):
            if not f.metadata.get("cli", True) or f.metadata.get("choices"):
                continue
            flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
            kinds = str(f.type)
            values = (
                ["nan", "inf", "-inf"] if "float" in kinds else ["-1"] if "int" in kinds else []
            )
            cases += [([*command, flag, value], flag) for value in values]
    return cases


NUMERIC = _numeric_cases()


@pytest.mark.parametrize(("args", "flag"), NUMERIC, ids=[" ".join(a[-2:]) for a, _ in NUMERIC])
def test_every_numeric_flag_refuses_nan_infinities_and_negative_counts(
    args, flag, tmp_path, capsys
):
    out = tmp_path / "out"
    code, err = _outcome([*args, "--out", str(out)], capsys)
    assert code != 0, args
    assert len(err) == 1 and err[0].startswith("ganforge: error:"), err
    assert "MNIST files" not in err[0]  # refused for the value, before any data is read
    assert not out.exists()


def test_debug_is_accepted_after_the_command_too(monkeypatch, tmp_path):
    import ganforge.cli.train as train_command

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(train_command, "run", broken)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--debug", "--out", str(tmp_path / "x")])
