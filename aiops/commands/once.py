"""``aiops once``: run one full cycle and print the report (``--json`` for machines)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from aiops.commands._common import EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, EXPECTED_ERRORS, add_config_arg, fail, load_or_explain
from aiops.config import AiopsConfig
from aiops.config.check import check_plugins
from aiops.engine.pipeline import Pipeline
from aiops.logs import configure_logging
from aiops.model import CycleReport
from aiops.report import render_text, report_dict


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("once", help="run one cycle and print what looks wrong and what would be done")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print the cycle report as JSON")
    p.set_defaults(func=run)


def run_once(config: AiopsConfig, *, stdout_for_machines: bool = False) -> CycleReport:
    """One cycle. With ``stdout_for_machines`` whatever the cycle prints for people (the console
    channel, a plugin's print) goes to stderr, so that stdout carries only the JSON report."""
    with contextlib.redirect_stdout(sys.stderr) if stdout_for_machines else contextlib.nullcontext():
        pipeline = Pipeline.from_config(config)
        try:
            pipeline.start()
            pipeline.learn_history()
            return pipeline.run_cycle()
        finally:
            pipeline.close()


def print_report(report: CycleReport, as_json: bool) -> None:
    if as_json:
        json.dump(report_dict(report), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(render_text(report))


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    configure_logging("WARNING", config.logging.format)
    problems = check_plugins(config)
    if problems:
        return fail("; ".join(f"{k}: {v}" for k, v in problems))
    try:
        report = run_once(config, stdout_for_machines=args.json)
    except EXPECTED_ERRORS as exc:
        return fail(exc)
    print_report(report, args.json)
    return EXIT_DEGRADED if report.degraded else EXIT_OK
