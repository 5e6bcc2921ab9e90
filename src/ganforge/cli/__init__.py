"""The ``ganforge`` command: one short module per command, each parsing its arguments and
calling one library function; errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import os
import sys

from ganforge.cli import (
    audit,
    detect,
    evaluate,
    fair,
    inside,
    provenance,
    reproduce,
    robustness,
    sample,
    semisupervised,
    synthesize,
    tables,
    train,
    utility,
)
from ganforge.cli.flags import Parser, formatter
from ganforge.errors import GanforgeError, Interrupted

MODULES = (
    train,
    sample,
    evaluate,
    reproduce,
    semisupervised,
    robustness,
    synthesize,
    utility,
    audit,
    detect,
    provenance,
    inside,
    tables,
    fair,
)


def build_parser() -> argparse.ArgumentParser:
    from ganforge import __version__

    parser = Parser(
        prog="ganforge",
        description="Generative adversarial networks: train, sample, interpolate, evaluate "
        "and reproduce published results.",
        epilog="example:\n  ganforge train --data-dir ../shared/datasets/mnist --out runs/demo\n"
        "  ganforge sample runs/demo -n 64 --out grid.png\n\n"
        "'ganforge COMMAND --help' shows each command's options.",
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"ganforge {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or GANFORGE_DEBUG=1)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GANFORGE_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]  # accepted before or after the command
    argv = tables.route(detect.route(argv))
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = argv
        if not args.command:
            parser.print_help()
            return 2
        return args.run(args)
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        message, code = _one_line(err)
        if _says(err):
            print(message, file=sys.stderr)
        return code


def _says(err: Exception) -> bool:
    """Whether this process reports ``err``. Of several processes on one machine, rank 0
    reports what they all hit (a bad data folder); a process whose peer died leaves that
    to the launcher that started it (``--nproc``)."""
    from ganforge.train import dist
    from ganforge.train.engine import PeerFailure

    if isinstance(err, PeerFailure) and os.environ.get(dist.LAUNCHED):
        return False
    if isinstance(err, GanforgeError) and dist.world_size() > 1 and not dist.is_writer():
        return not dist.single_node()
    return True


def _one_line(err: Exception) -> tuple[str, int]:
    """What the user sees of any failure, and the exit code."""
    if isinstance(err, Interrupted):
        return f"ganforge: {err}", 130
    if isinstance(err, GanforgeError):
        return f"ganforge: error: {err}", 2
    if isinstance(err, OSError):  # unwritable folder, full disk, a file for a folder
        return f"ganforge: error: {err}", 1
    # A bug: still one line; the traceback with --debug.
    first = (str(err).splitlines() or [""])[0]
    name = type(err).__name__
    return f"ganforge: error: unexpected {name}: {first} (--debug shows the traceback)", 1


if __name__ == "__main__":
    raise SystemExit(main())
