"""The ``ganforge`` command: one short module per command, each parsing its arguments and
calling one library function; errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import sys

from ganforge.cli import evaluate, reproduce, robustness, sample, semisupervised, train
from ganforge.cli.flags import Parser, formatter
from ganforge.errors import GanforgeError, Interrupted

MODULES = (train, sample, evaluate, reproduce, semisupervised, robustness)


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except GanforgeError as err:
        print(f"ganforge: error: {err}", file=sys.stderr)
        return 2
    except Interrupted as err:
        print(f"ganforge: {err}", file=sys.stderr)
        return 130
    except OSError as err:  # unwritable folder, full disk, a file where a folder should be
        print(f"ganforge: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ganforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
