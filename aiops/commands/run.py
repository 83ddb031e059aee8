"""``aiops run --config FILE``: the daemon."""

from __future__ import annotations

import argparse

from aiops.commands._common import EXIT_OK, EXIT_USAGE, EXPECTED_ERRORS, add_config_arg, fail, load_or_explain
from aiops.daemon import Daemon, webhook_for
from aiops.config.check import check_plugins
from aiops.engine.pipeline import Pipeline
from aiops.logs import configure_logging


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon: cycles on a schedule, /metrics, /healthz, /readyz")
    add_config_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    configure_logging(config.logging.level, config.logging.format)
    problems = check_plugins(config)
    if problems:
        return fail("; ".join(f"{k}: {v}" for k, v in problems))
    try:
        pipeline = Pipeline.from_config(config)
        webhook = webhook_for(config, pipeline)
    except EXPECTED_ERRORS as exc:
        return fail(exc)
    try:
        daemon = Daemon(config, pipeline, webhook=webhook)
    except EXPECTED_ERRORS as exc:
        pipeline.close()
        return fail(exc)
    except OSError as exc:  # only binding the listeners: the state file's errors are StateErrors
        pipeline.close()
        server = config.server
        ports = f"{server.port}" + (f" or {server.webhook_port}" if server.webhook_port is not None else "")
        return fail(f"cannot listen on {server.host}:{ports}: {exc.strerror}. Stop what holds the port, "
                    "or set server.port (and server.webhook_port) to a free one")
    daemon.run_forever()
    return EXIT_OK
