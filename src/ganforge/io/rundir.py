"""Run folders: ``manifest.json`` names what a folder holds, so every command can tell a GAN
run from a semi-supervised or a robust one and refuse the wrong kind in one line.

The manifest: ``{"kind": "gan" | "semisupervised" | "robust" | "detector", "format": 2, "ganforge":
version}``. Folders written before the manifest existed (format 1) are recognised by their
files. A folder of a newer format is refused with a message that says to upgrade.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.io.atomic import atomic_write_bytes

MANIFEST = "manifest.json"
FORMAT = 2
KINDS = ("gan", "semisupervised", "robust", "detector", "table", "fair")
# What each kind is trained with, for messages that send a folder to the right command.
COMMANDS = {
    "gan": "ganforge train",
    "semisupervised": "ganforge semisupervised",
    "robust": "ganforge robust-train",
    "detector": "ganforge detect train",
    "table": "ganforge train --dataset table",
    "fair": "ganforge fair train",
}


def _legacy_kind(path: Path) -> str | None:
    """The kind of a folder written before manifests, from its files."""
    if (path / "checkpoints" / "last.pt").is_file():
        return "gan"
    if (path / "semisupervised.json").is_file():
        return "semisupervised"
    if (path / "summary.json").is_file() or (path / "model.pt").is_file():
        return "robust"
    return None


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The folder's manifest (format-1 folders get one made up from their files), or None
    when the folder holds no run."""
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        kind = _legacy_kind(path)
        return None if kind is None else {"kind": kind, "format": 1}
    try:
        manifest = json.loads(file.read_text())
        kind, fmt = manifest["kind"], manifest["format"]
    except (OSError, ValueError, KeyError, TypeError):
        raise GanforgeError(f"{file} is not a ganforge run manifest") from None
    if not isinstance(fmt, int) or fmt > FORMAT:
        raise GanforgeError(
            f"{path} was written by a newer ganforge (run format {fmt}); upgrade ganforge "
            "to read it"
        )
    if kind not in KINDS:
        raise GanforgeError(f"{path} holds a run of unknown kind {kind!r}")
    return manifest


def run_kind(path: str | Path) -> str | None:
    manifest = read_manifest(path)
    return None if manifest is None else manifest["kind"]


def require_kind(path: str | Path, kind: str) -> None:
    """Refuse ``path`` in one line when it holds a run of another kind."""
    found = run_kind(path)
    if found is not None and found != kind:
        raise GanforgeError(
            f"{path} is a {found} run folder (made by '{COMMANDS[found]}'), not a {kind} "
            f"one (made by '{COMMANDS[kind]}')"
        )


def write_manifest(path: str | Path, kind: str) -> None:
    """Mark ``path`` as a run of ``kind`` (refused when it already holds another kind)."""
    from ganforge import __version__

    path = Path(path)
    require_kind(path, kind)
    manifest = {"kind": kind, "format": FORMAT, "ganforge": __version__}
    atomic_write_bytes(path / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())


LOCK = ".lock"


def check_out_folder(path: str | Path, kind: str) -> None:
    """A run of ``kind`` may go into ``path`` only when it does not exist, is empty, or
    already holds a run of that kind; a folder of the user's own files is never written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GanforgeError(f"--out {path} is a file, not a folder")
    if not path.is_dir():
        return
    found = run_kind(path)
    if found is None:  # hidden files (.gitkeep, .DS_Store) are never written over
        entries = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        if entries:
            raise GanforgeError(
                f"{path} holds files that are not a ganforge run (such as {entries[0]!r}); "
                "choose a new or empty --out"
            )
    require_kind(path, kind)


# What a training run writes itself; other commands' files (sampled/, evaluation.json,
# attack reports) may be being written by an unlocked process and are left alone.
RUN_FILES = ("manifest.json", "config.yaml", "samples.png", "losses.png", "metrics.jsonl",
             "semisupervised.json", "summary.json", "model.pt", "classifier.pt")  # fmt: skip
RUN_FOLDERS = ("checkpoints", "samples", "models")


def remove_stale_temporaries(path: Path) -> None:
    """Temporary files (``.NAME.XXXX.tmp``) of the run's own writes that a kill -9 cut short."""
    stale = [t for name in RUN_FILES for t in path.glob(f".{name}.*.tmp")]
    stale += [t for folder in RUN_FOLDERS for t in (path / folder).glob(".*.tmp")]
    for tmp in stale:
        tmp.unlink(missing_ok=True)


def has_checkpoints(path: Path) -> bool:
    folder = path / "checkpoints"
    return folder.is_dir() and any(p.suffix == ".pt" for p in folder.iterdir())


class RunLock:
    """An exclusive OS lock on a run folder while a process writes it: a second writer is
    refused at once, and the kernel releases the lock on any exit, kill -9 included."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: Any = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path / LOCK, "a+")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            self._file = None
            raise GanforgeError(
                f"{self.path} is being written by another ganforge process ({holder}); wait "
                "for it to finish or choose another --out"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()}\n")
        self._file.flush()
        remove_stale_temporaries(self.path)  # no other writer: any temporary is stale
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None
