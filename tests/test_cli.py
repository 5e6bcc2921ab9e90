"""The ``ganforge`` command: help, one-line errors with no partial output, Ctrl-C, resume."""

from __future__ import annotations

import gzip
import random
import shutil
import struct
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from ganforge.cli import main
from ganforge.train.checkpoint import LAST, load_checkpoint

TINY = [
    "--device", "cpu", "--amp", "off", "--width", "8", "--z-dim", "8", "--batch-size", "16",
    "--steps", "2", "--quiet",
]  # fmt: skip


# -- help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["interpolate"]])
def test_help_exits_zero_and_shows_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert ("usage: ganforge " + (command[0] if command else "")) in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) != 0
    assert "train" in capsys.readouterr().out


# -- bad input: one line on stderr, non-zero exit, nothing written -------------------------


def _idx(magic: int, dims: tuple[int, ...], payload: int | None = None) -> bytes:
    size = payload if payload is not None else int(torch.tensor(dims).prod())
    return struct.pack(f">I{len(dims)}I", magic, *dims) + bytes(size)


def _mnist_dir(root: Path, images: bytes, labels: bytes, gz: bool) -> Path:
    root.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    (root / f"train-images-idx3-ubyte{suffix}").write_bytes(pack(images))
    (root / f"train-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
    return root


GOOD_LABELS = _idx(2049, (4,))
GOOD_IMAGES = _idx(2051, (4, 28, 28))

# Run in a fresh process (``python -m ganforge``): the cases a user meets most.
SUBPROCESS_CASES = [
    "unknown-network",
    "unknown-loss",
    "mnist-missing",
    "idx-wrong-magic",
    "idx-truncated-raw",
    "idx-truncated-gz",
    "folder-empty",
    "sample-missing-checkpoint",
    "sample-corrupt-checkpoint",
    "resume-other-network",
    "sample-weights-of-other-network",
    "sample-class-out-of-range",
    "sample-class-unconditional",
]

# More of the same through ``main()`` in this process (each fresh process costs seconds).
IN_PROCESS_CASES = [
    "resume-weights-of-other-network",
    "mnist-labels-missing",
    "idx-gzip-stream-cut",
    "folder-missing",
    "dcgan-odd-image-size",
    "conditional-network-unlabelled-folder",
    "sample-truncated-checkpoint",
    "sample-class-negative",
    "interpolate-class-out-of-range",
    "interpolate-one-step",
    "sample-zero-images",
    "sample-existing-png-folder",
    "sample-checkpoint-starts-like-a-pickle",
    "sample-negative-nrow",
    "reproduce-mnist-missing",
    "reproduce-into-another-run",
    "reproduce-unknown-paper",
    "reproduce-zero-steps",
]

# Fragments each error line must contain, so that the test cannot pass on some other error.
EXPECT = {
    "unknown-network": ["network", "nosuchnet"],
    "unknown-loss": ["loss", "nosuchloss"],
    "mnist-missing": ["missing", "train-images-idx3-ubyte"],
    "mnist-labels-missing": ["missing", "train-labels-idx1-ubyte"],
    "idx-wrong-magic": ["magic", "train-images-idx3-ubyte"],
    "idx-truncated-raw": ["truncated", "train-images-idx3-ubyte"],
    "idx-truncated-gz": ["truncated", "train-images-idx3-ubyte.gz"],
    "idx-gzip-stream-cut": ["train-images-idx3-ubyte.gz"],
    "folder-empty": ["no images"],
    "folder-missing": ["does not exist"],
    "dcgan-odd-image-size": ["27"],
    "conditional-network-unlabelled-folder": ["conditional"],
    "sample-missing-checkpoint": ["does not exist"],
    "sample-corrupt-checkpoint": ["random.pt"],
    "sample-truncated-checkpoint": ["half.pt"],
    "sample-weights-of-other-network": ["do not fit", "mlp2014"],
    "resume-other-network": ["dcgan", "mlp2014"],
    "resume-weights-of-other-network": ["do not fit", "mlp2014"],
    "sample-class-out-of-range": ["class 10", "0..9"],
    "sample-class-negative": ["class -1"],
    "interpolate-class-out-of-range": ["class 10"],
    "interpolate-one-step": ["2 steps"],
    "sample-class-unconditional": ["conditional"],
    "sample-zero-images": ["at least 1"],
    "sample-existing-png-folder": ["already exists"],
    "sample-checkpoint-starts-like-a-pickle": ["pickle.pt"],
    "sample-negative-nrow": ["nrow"],
    "reproduce-mnist-missing": ["missing", "train-images-idx3-ubyte"],
    "reproduce-into-another-run": ["dcgan", "not this reproduction"],
    "reproduce-unknown-paper": ["reproduction", "nosuchpaper"],
    "reproduce-zero-steps": ["steps", "at least 1"],
}


def _copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def _with_other_network_in_config(run: Path) -> Path:
    """The checkpoint's config says mlp2014 but its weights are DCGAN's."""
    state = torch.load(run / LAST, map_location="cpu", weights_only=True)
    state["config"]["model"]["network"] = "mlp2014"
    torch.save(state, run / LAST)
    return run


@dataclass
class BadInput:
    args: list[str]
    must_not_exist: list[Path] = field(default_factory=list)
    unchanged: Path | None = None  # a folder that must not be modified


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, uncond_run: Path, cond_run: Path) -> dict[str, BadInput]:
    """Every bad input, prepared on disk, with the command that must reject it."""
    tmp = tmp_path_factory.mktemp("bad-input")

    def train(case: str, *args) -> BadInput:
        out = tmp / "out" / case
        return BadInput(["train", *TINY, *map(str, args), "--out", str(out)], [out])

    def sample(case: str, checkpoint: Path, *args, out: Path | None = None) -> BadInput:
        out = out or tmp / "sampled" / case / "grid.png"
        return BadInput(
            ["sample", str(checkpoint), *map(str, args), "--out", str(out)], [out, out.parent]
        )

    def resume(run: Path, *args) -> BadInput:
        return BadInput(["train", "--resume", str(run), *args, "--quiet"], unchanged=run)

    empty = tmp / "empty"
    empty.mkdir()
    flat = tmp / "flat"
    flat.mkdir()
    for i in range(20):  # enough for one batch, so that the size is what fails
        Image.new("L", (27, 27), i * 12).save(flat / f"{i:02d}.png")
    only_images = tmp / "only-images"
    only_images.mkdir()
    (only_images / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(GOOD_IMAGES))
    cut = gzip.compress(GOOD_IMAGES)
    cut_dir = _mnist_dir(tmp / "cut", GOOD_IMAGES, GOOD_LABELS, gz=True)
    (cut_dir / "train-images-idx3-ubyte.gz").write_bytes(cut[: len(cut) // 2])
    short = _idx(2051, (4, 28, 28), payload=1000)  # a valid header, too few pixels
    wrong_magic = _mnist_dir(tmp / "magic", _idx(0x1234_5678, (4, 28, 28)), GOOD_LABELS, False)
    short_raw = _mnist_dir(tmp / "short-raw", short, GOOD_LABELS, gz=False)
    short_gz = _mnist_dir(tmp / "short-gz", short, GOOD_LABELS, gz=True)
    mnist = ["--dataset", "mnist", "--no-download", "--data-dir"]
    digits = ["--dataset", "digits"]
    folder = ["--dataset", "folder", "--channels", "1", "--data-dir"]

    corrupt = tmp / "random.pt"
    corrupt.write_bytes(random.Random(0).randbytes(4096))
    half = tmp / "half.pt"
    data = (uncond_run / LAST).read_bytes()
    half.write_bytes(data[: len(data) // 2])
    pickle_like = tmp / "pickle.pt"
    pickle_like.write_bytes(b"\x80")
    existing = tmp / "existing-pngs"
    existing.mkdir()
    (existing / "keep.png").write_bytes(b"mine")

    cases = {
        "unknown-network": train("unknown-network", *digits, "--network", "nosuchnet"),
        "unknown-loss": train("unknown-loss", *digits, "--loss", "nosuchloss"),
        "mnist-missing": train("mnist-missing", *mnist, empty),
        "mnist-labels-missing": train("mnist-labels-missing", *mnist, only_images),
        "idx-wrong-magic": train("idx-wrong-magic", *mnist, wrong_magic),
        "idx-truncated-raw": train("idx-truncated-raw", *mnist, short_raw),
        "idx-truncated-gz": train("idx-truncated-gz", *mnist, short_gz),
        "idx-gzip-stream-cut": train("idx-gzip-stream-cut", *mnist, cut_dir),
        "folder-empty": train("folder-empty", *folder, empty),
        "folder-missing": train("folder-missing", *folder, tmp / "no-such-folder"),
        "dcgan-odd-image-size": train(
            "dcgan-odd-image-size", *folder, flat, "--image-size", "27", "--network", "dcgan"
        ),
        "conditional-network-unlabelled-folder": train(
            "conditional-network-unlabelled-folder",
            *folder,
            flat,
            "--image-size",
            "8",
            "--network",
            "dcgan-cond",
        ),  # fmt: skip
        "sample-missing-checkpoint": sample("sample-missing-checkpoint", tmp / "no-such-run"),
        "sample-corrupt-checkpoint": sample("sample-corrupt-checkpoint", corrupt),
        "sample-truncated-checkpoint": sample("sample-truncated-checkpoint", half),
        "sample-weights-of-other-network": sample(
            "sample-weights-of-other-network",
            _with_other_network_in_config(_copy_run(uncond_run, tmp / "sample-crafted")),
        ),
        "resume-other-network": resume(
            _copy_run(uncond_run, tmp / "resume-plain"), "--network", "mlp2014", "--steps", "9"
        ),
        "resume-weights-of-other-network": resume(
            _with_other_network_in_config(_copy_run(uncond_run, tmp / "resume-crafted")),
            "--steps",
            "9",
        ),  # fmt: skip
        "sample-class-out-of-range": sample("sample-class-out-of-range", cond_run, "--class", "10"),
        "sample-class-negative": sample("sample-class-negative", cond_run, "--class", "-1"),
        "sample-class-unconditional": sample(
            "sample-class-unconditional", uncond_run, "--class", "0"
        ),
        "sample-zero-images": sample("sample-zero-images", uncond_run, "-n", "0"),
        "sample-existing-png-folder": BadInput(
            ["sample", str(uncond_run), "-n", "3", "--out", str(existing)]
        ),
        "sample-checkpoint-starts-like-a-pickle": sample(
            "sample-checkpoint-starts-like-a-pickle", pickle_like
        ),
        "sample-negative-nrow": sample("sample-negative-nrow", uncond_run, "--nrow", "-2"),
    }
    for case, run, args in [
        ("interpolate-class-out-of-range", cond_run, ["--class", "10"]),
        ("interpolate-one-step", uncond_run, ["--steps", "1"]),
    ]:
        out = tmp / "walks" / case / "walk.gif"
        cases[case] = BadInput(
            ["interpolate", str(run), *args, "--out", str(out)], [out, out.parent]
        )
    gf = ["reproduce", "goodfellow2014", "--no-download", "--quiet", "--data-dir", str(empty)]
    out = tmp / "reproduced"
    cases["reproduce-mnist-missing"] = BadInput([*gf, "--out", str(out)], [out])
    other = _copy_run(uncond_run, tmp / "reproduce-other")
    cases["reproduce-into-another-run"] = BadInput([*gf, "--out", str(other)], unchanged=other)
    cases["reproduce-unknown-paper"] = BadInput(["reproduce", "nosuchpaper", "--out", str(out)])
    cases["reproduce-zero-steps"] = BadInput([*gf, "--steps", "0", "--out", str(out)], [out])
    cases["sample-existing-png-folder"].unchanged = existing
    cases["sample-class-out-of-range"].unchanged = cond_run
    cases["sample-class-unconditional"].unchanged = uncond_run
    assert set(cases) == set(EXPECT)
    return cases


def _check_no_output(bad: BadInput, before: dict[str, bytes] | None, folder_snapshot) -> None:
    for path in bad.must_not_exist:
        assert not path.exists(), f"{path} was created"
    if bad.unchanged is not None:
        assert folder_snapshot(bad.unchanged) == before, f"{bad.unchanged} was modified"


@pytest.fixture(scope="module")
def subprocess_results(bad_inputs, cli_many, folder_snapshot):
    """Run every subprocess case at once (two at a time); keep the snapshots taken before."""
    names = [c if isinstance(c, str) else c.values[0] for c in SUBPROCESS_CASES]
    before = {n: folder_snapshot(bad_inputs[n].unchanged) for n in names if bad_inputs[n].unchanged}
    procs = cli_many({n: bad_inputs[n].args for n in names})
    return {n: (procs[n], before.get(n)) for n in names}


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_gives_one_line_error_and_no_output(
    case: str, bad_inputs, subprocess_results, one_line_error, folder_snapshot
):
    proc, before = subprocess_results[case]
    assert "Traceback" not in proc.stderr, proc.stderr
    one_line_error(proc, *EXPECT[case])
    assert proc.returncode == 2
    assert proc.stdout == ""
    _check_no_output(bad_inputs[case], before, folder_snapshot)


@pytest.mark.parametrize("case", IN_PROCESS_CASES)
def test_more_bad_input_gives_one_line_error_and_no_output(
    case: str, bad_inputs, capsys, one_line_error, folder_snapshot
):
    bad = bad_inputs[case]
    before = folder_snapshot(bad.unchanged) if bad.unchanged else None
    code = main(bad.args)
    captured = capsys.readouterr()
    proc = subprocess.CompletedProcess(bad.args, code, captured.out, captured.err)
    one_line_error(proc, *EXPECT[case])
    assert code == 2
    _check_no_output(bad, before, folder_snapshot)


def test_corrupt_checkpoint_error_comes_without_warnings(tmp_path: Path, capsys):
    bad = tmp_path / "proto.pt"
    bad.write_bytes(b"\x80\x04garbage")  # looks like the start of a protocol-4 pickle
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["sample", str(bad), "--out", str(tmp_path / "g.png")])
    assert code == 2 and "proto.pt" in capsys.readouterr().err
    assert [str(w.message) for w in caught] == []


# -- Ctrl-C -----------------------------------------------------------------------------------


# -- train and resume through the command -------------------------------------------------------


def test_train_then_resume_through_the_command(tmp_path: Path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", *TINY, "--out", str(out)]) == 0
    assert "trained to step 2" in capsys.readouterr().out
    assert load_checkpoint(out)["step"] == 2
    assert main(["train", "--resume", str(out), "--steps", "4", "--quiet"]) == 0
    assert "trained to step 4" in capsys.readouterr().out
    state = load_checkpoint(out)
    assert state["step"] == 4
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == 4


def test_resume_refuses_config_and_out(tmp_path: Path, uncond_run: Path, capsys):
    assert main(["train", "--resume", str(uncond_run), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0]
    assert not (tmp_path / "x").exists()


def test_train_into_an_existing_run_is_refused(uncond_run: Path, capsys, folder_snapshot):
    before = folder_snapshot(uncond_run)
    assert main(["train", "--dataset", "digits", *TINY, "--out", str(uncond_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert folder_snapshot(uncond_run) == before
