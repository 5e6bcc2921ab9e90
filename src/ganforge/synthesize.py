"""A labelled synthetic dataset from a class-conditional run, with its datasheet.

The output folder holds ``synthetic.npz`` (``images``: uint8 NHWC, ``labels``: int64),
for grayscale 28x28 data also an MNIST-style IDX pair (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, so any MNIST reader, ours included, loads it as a training
set), and ``datasheet.json`` / ``datasheet.md``: what made it (run, step, network), from
which data, under which privacy guarantee, when and by which command. The folder appears
whole or not at all.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ganforge.data import to_uint8
from ganforge.errors import GanforgeError
from ganforge.io.atomic import current_umask
from ganforge.io.rundir import require_kind
from ganforge.nets import generate
from ganforge.privacy.recipe import checkpoint_privacy
from ganforge.resources import require_image_memory
from ganforge.sampling import generator_from_state, noise
from ganforge.train.checkpoint import load_checkpoint

CHUNK = 5000


@dataclass
class SyntheticSet:
    folder: Path
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    datasheet: dict[str, Any]


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (magic 0x0801 for labels, 0x0803 for images)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def load_synthetic(source: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NCHW images and int64 labels from a synthesize folder or its npz."""
    path = Path(source)
    if path.is_dir():
        path = path / "synthetic.npz"
    if not path.is_file():
        raise GanforgeError(f"{source} is not a folder from ganforge synthesize nor an .npz")
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, ValueError, KeyError) as err:
        raise GanforgeError(f"{path} is not a synthetic-data npz ({err})") from None
    if images.dtype != np.uint8 or images.ndim != 4 or labels.shape != images.shape[:1]:
        raise GanforgeError(f"{path} does not hold uint8 NHWC images with one label each")
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(
        labels.astype(np.int64)
    )


def check_out(out: Path, force: bool) -> None:
    """A new or empty folder; with ``force`` also an earlier synthesize output, never a
    folder of other files (they would be lost)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not out.is_dir():
        raise GanforgeError(f"{out} is a file; --out takes a folder")
    if not (out / "datasheet.json").is_file():
        raise GanforgeError(f"{out} holds other files; pick a new or empty folder for --out")
    if not force:
        raise GanforgeError(f"{out} holds synthetic data; pass --force to replace it")


def synthesize(
    run: str | Path,
    n: int,
    out: str | Path,
    seed: int = 0,
    device: str = "cpu",
    command: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> SyntheticSet:
    """Draw ``n`` labelled images (an equal share of each class) from ``run``'s averaged
    generator and write them with their datasheet into the folder ``out``."""
    out = Path(out)
    if n < 1:
        raise GanforgeError(f"-n must be at least 1, got {n}")
    check_out(out, force)
    if Path(run).is_dir():
        require_kind(run, "gan")
    state = load_checkpoint(run, kind="gan")
    gen = generator_from_state(state, run, device)
    if not gen.class_conditional:
        raise GanforgeError(
            f"{run} holds an unconditional generator ({gen.network!r}); labelled synthetic "
            "data needs a class-conditional one (dcgan-cond, dcgan-cond-dp, resnet-cond ...)"
        )
    spec = gen.spec
    require_image_memory(n, spec.channels, spec.image_size, gen.z_dim, f"{n:,} images")
    with staging(out) as tmp:  # an unwritable place fails here, before any work
        return _make(run, state, gen, n, out, tmp, seed, command, force, progress)


def _make(run, state, gen, n, out, tmp, seed, command, force, progress) -> SyntheticSet:
    labels = torch.arange(n) % gen.num_classes
    labels = labels[torch.randperm(n, generator=torch.Generator().manual_seed(seed))]
    z = noise(n, gen.z_dim, seed)
    chunks = []
    for i in tqdm(range(0, n, CHUNK), desc="synthesize", unit="chunk", disable=not progress):
        chunks.append(to_uint8(generate(gen.generator, z[i : i + CHUNK], labels[i : i + CHUNK])))
    images = torch.cat(chunks)  # uint8 NHWC
    sheet = datasheet(run, state, gen, n, seed, labels, command)
    _write_folder(tmp, out, images, labels, sheet, force)
    return SyntheticSet(out, images.permute(0, 3, 1, 2), labels, sheet)


def datasheet(run, state, gen, n, seed, labels, command) -> dict[str, Any]:
    cfg = state["config"]
    data = cfg["data"]
    counts = torch.bincount(labels, minlength=gen.num_classes).tolist()
    return {
        "what": f"{n:,} synthetic labelled images from a {gen.network} generator",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": command,
        "generator": {
            "run": str(Path(run).resolve()),
            "step": int(state["step"]),
            "network": gen.network,
            "weights": "the averaged (EMA) generator",
        },
        "training_data": {
            "dataset": data["name"],
            "folder": data.get("root"),
            "limit": data.get("limit"),
            "records": (state["recipe"].get("privacy") or {}).get("records"),
        },
        "privacy": checkpoint_privacy(state)
        or "none: the generator was trained without differential privacy; its samples may "
        "reveal training records",
        "samples": {
            "count": n,
            "seed": seed,
            "shape": [gen.spec.channels, gen.spec.image_size, gen.spec.image_size],
            "class_names": list(gen.class_names),
            "per_class": counts,
        },
    }


def datasheet_markdown(sheet: dict[str, Any]) -> str:
    lines = ["# Datasheet: synthetic data", "", sheet["what"] + ".", ""]
    g, d, p = sheet["generator"], sheet["training_data"], sheet["privacy"]
    lines += [
        f"- Created: {sheet['created']}",
        f"- Command: `{sheet['command']}`" if sheet["command"] else "- Command: (library call)",
        f"- Generator: {g['network']} at step {g['step']} of `{g['run']}` ({g['weights']})",
        f"- Training data: {d['dataset']} from `{d['folder']}`"
        + (f", first {d['limit']:,} images" if d["limit"] else ""),
        "",
        "## Privacy",
        "",
    ]
    if isinstance(p, dict):
        lines += [
            f"({p['epsilon_spent']:.3g}, {p['delta']:g})-differential privacy for every training "
            f"record ({p['accountant']} accountant; target epsilon {p['epsilon_target']:g}).",
            "",
            f"- Mechanism: {p['mechanism']}",
            f"- Noise multiplier {p['noise_multiplier']:.4g}, clipping norm {p['clip']:g}, "
            f"sampling rate {p['sample_rate']:.4g}, {p['discriminator_steps_done']:,} steps",
        ]
    else:
        lines.append(p)
    s = sheet["samples"]
    per_class = ", ".join(
        f"{c}: {k}" for c, k in zip(s["class_names"], s["per_class"], strict=True)
    )
    lines += ["", "## Samples", "", f"- {s['count']:,} images of shape {s['shape']}, seed "
              f"{s['seed']}", f"- Per class: {per_class}", ""]  # fmt: skip
    return "\n".join(lines)


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` (named with this process's id), removed afterwards
    whatever happens; those a killed process left behind are removed first."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.*.tmp"):
        pid = old.name[len(out.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=out.parent)
    )
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _write_folder(
    tmp: Path, out: Path, images: torch.Tensor, labels: torch.Tensor, sheet: dict, force: bool
) -> None:
    """Write everything into a temporary folder beside ``out``, then move it into place."""
    arr, lab = images.numpy(), labels.numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, images=arr, labels=lab)
    (tmp / "synthetic.npz").write_bytes(buf.getvalue())
    if arr.shape[1:] == (28, 28, 1):
        for name, data in (("train-images-idx3-ubyte", arr[..., 0]),
                           ("train-labels-idx1-ubyte", lab)):  # fmt: skip
            (tmp / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(data), mtime=0))
    (tmp / "datasheet.json").write_text(json.dumps(sheet, indent=2) + "\n")
    (tmp / "datasheet.md").write_text(datasheet_markdown(sheet))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it owner-only
    if out.exists():
        check_out(out, force)  # again: it may have appeared while writing
        shutil.rmtree(out)
    os.replace(tmp, out)
