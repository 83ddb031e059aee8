"""Helpers shared by subcommands: loading the config with errors a person can act on."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aiops.config import AiopsConfig, ConfigError, load_config
from aiops.errors import explain
from aiops.kube.client import KubeConfigError
from aiops.state import StateError

EXIT_OK, EXIT_DEGRADED, EXIT_USAGE = 0, 1, 2


def add_config_arg(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument(
        "--config", "-c", type=Path, required=required, metavar="FILE",
        help="YAML config file (default: built-in defaults, Prometheus on 127.0.0.1:9090)",
    )


def load_or_explain(path: Path | None) -> AiopsConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(exc)
        return None


def fail(problem: str | BaseException, code: int = EXIT_USAGE) -> int:
    """Print ``problem`` for people (an error with its hint, :func:`aiops.errors.explain`); ``code``."""
    print(f"error: {problem if isinstance(problem, str) else explain(problem)}", file=sys.stderr)
    return code


EXPECTED_ERRORS = (ConfigError, StateError, KubeConfigError)
