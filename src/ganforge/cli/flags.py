"""Command-line flags generated from config dataclasses, so that each default, choice and
help text lives once, in the field's :func:`ganforge.config.option` metadata."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError

SEP = "__"  # argparse dest of a sectioned field: "train__batch_size"


def _shown_default(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta.get("default_text") is not None:
        return meta["default_text"]
    value = f.default
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _add_field(group: Any, f: dataclasses.Field, dest: str) -> None:
    meta = dict(f.metadata)
    if not meta or not meta.get("cli", True):
        return
    kinds = {part.strip() for part in str(f.type).split("|")}
    name = f.name.replace("_", "-")
    if "bool" in kinds:
        flag = meta.get("flag") or (f"--no-{name}" if f.default else f"--{name}")
        group.add_argument(
            flag, dest=dest, action="store_const", const=not f.default, default=None,
            help=meta["help"],
        )  # fmt: skip
        return
    kwargs: dict[str, Any] = {"dest": dest, "default": None, "metavar": meta.get("metavar")}
    if str(f.type).startswith("tuple[int"):
        kwargs |= {"type": int, "nargs": "+", "metavar": kwargs["metavar"] or "N"}
    elif "int" in kinds:
        kwargs |= {"type": int, "metavar": kwargs["metavar"] or "N"}
    elif "float" in kinds:
        kwargs |= {"type": float, "metavar": kwargs["metavar"] or "X"}
    else:
        kwargs["metavar"] = kwargs["metavar"] or "NAME"
    help_text = meta["help"]
    choices = meta.get("choices")
    if choices is not None:
        kwargs["choices"] = list(choices() if callable(choices) else choices)
        help_text += ": " + ", ".join(map(str, kwargs["choices"]))
    help_text += f" (default: {_shown_default(f)})"
    group.add_argument(meta.get("flag") or f"--{name}", help=help_text, **kwargs)


def add_config_flags(
    parser: argparse.ArgumentParser, cfg_type: type, titles: dict[str, str] | None = None
) -> None:
    """A flag for every field of ``cfg_type`` (a flat config, or one of sections, each
    section an argument group titled from ``titles``)."""
    for f in dataclasses.fields(cfg_type):
        section = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(section, type) and dataclasses.is_dataclass(section):
            group = parser.add_argument_group((titles or {}).get(f.name, f.name))
            for sub in dataclasses.fields(section):
                _add_field(group, sub, f"{f.name}{SEP}{sub.name}")
        else:
            _add_field(parser, f, f.name)


def config_overrides(args: argparse.Namespace, cfg_type: type) -> dict[str, Any]:
    """Only the config flags the user gave: ``{"section": {"key": value}}`` or ``{"key":
    value}``, ready for :func:`ganforge.config.merge`."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if value is None:
            continue
        if SEP in dest:
            section, key = dest.split(SEP, 1)
            out.setdefault(section, {})[key] = value
        elif dest in {f.name for f in dataclasses.fields(cfg_type)}:
            out[dest] = value
    return out


class Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line, like every other ganforge error."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"ganforge: error: {self.prog}: {message} (see --help)\n")


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add_force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace an existing output file")


def refuse_existing(out: Path, force: bool) -> None:
    """An output file that exists is replaced only with ``--force``."""
    if out.is_dir():
        raise GanforgeError(f"{out} is a folder; give a file name")
    if out.exists() and not force:
        raise GanforgeError(f"{out} exists; pass --force to replace it")


def add_run_options(p: argparse.ArgumentParser, device: bool = True) -> None:
    """The options every MNIST experiment command (reproduce, semisupervised, attack,
    robust-train) shares."""
    p.add_argument("--data-dir", metavar="DIR", help="MNIST IDX folder (default: as for train)")
    if device:
        p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    p.add_argument("--no-download", action="store_true", help="never download missing MNIST")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_json_out(p: argparse.ArgumentParser) -> None:
    """``--json FILE`` (the command's figures) with ``--force`` to replace it."""
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    add_force(p)


def check_json_out(args: argparse.Namespace) -> None:
    """Refuse an existing ``--json`` file (without ``--force``) before any work."""
    if args.json:
        refuse_existing(Path(args.json), args.force)


def write_json_out(args: argparse.Namespace, result: Any) -> None:
    if args.json:
        from ganforge.io.atomic import atomic_write_json

        atomic_write_json(args.json, result)
