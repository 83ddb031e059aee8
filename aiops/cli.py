"""The ``aiops`` command line. Each subcommand lives in ``aiops/commands/<name>.py`` with a
``register(subparsers)`` function that adds its parser and sets ``func``; ``func(args)`` returns
the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from aiops import __version__

# Order is the order of ``aiops --help``.
COMMANDS: tuple[str, ...] = (
    "aiops.commands.run",
    "aiops.commands.once",
    "aiops.commands.demo",
    "aiops.commands.check_config",
    "aiops.commands.history",
    "aiops.commands.notify",
    "aiops.commands.replay",
    "aiops.commands.backtest",
    "aiops.commands.advise",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiops",
        description="Predict and heal failures of AI workloads on Kubernetes from Prometheus signals.",
    )
    parser.add_argument("--version", action="version", version=f"aiops {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
