"""``aiops replay``: what the daemon would have done over a stretch of history, before ``auto``.

Runs the real pipeline once per ``--every`` between ``--from`` and ``--to`` against the configured
Prometheus, dry-run with throwaway state and notifications written to a file, then writes a
timeline report (HTML, Markdown, JSON, PNG) into ``--out``. See
:mod:`aiops.evaluation.cluster_replay` and :mod:`aiops.evaluation.replay_report`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiops.commands._common import EXIT_OK, EXIT_USAGE, EXPECTED_ERRORS, add_config_arg, fail, load_or_explain
from aiops.config.base import parse_duration
from aiops.logs import configure_logging
from aiops.model import Mode

MAX_CYCLES = 200_000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="run the whole daemon over Prometheus history (dry-run) and report what it would have done",
    )
    add_config_arg(p)
    p.add_argument("--from", dest="start", required=True, metavar="T", help="first cycle (ISO 8601, UTC if no zone)")
    p.add_argument("--to", dest="end", required=True, metavar="T", help="last cycle (ISO 8601, UTC if no zone)")
    p.add_argument("--every", default="1m", metavar="DURATION", help="simulated cycle interval (default 1m)")
    p.add_argument("--incidents", type=Path, metavar="FILE",
                   help="YAML/JSON list of incidents (name, entity glob, failure_at) to measure lead times")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where the report is written")
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.AUTO.value,
                   help="the mode to replay in (default auto: what `auto` would do; always dry-run)")
    p.add_argument("--json", action="store_true", help="print the report's figures as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z") from None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    from aiops.evaluation.cluster_replay import run_replay
    from aiops.evaluation.replay_report import IncidentsError, incidents_warned, load_incidents, write_report

    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        start, end = parse_time(args.start), parse_time(args.end)
        every = parse_duration(args.every)
    except ValueError as exc:
        return fail(exc)
    if every <= timedelta(0):
        return fail("--every must be a positive duration, e.g. 1m")
    if end < start:
        return fail(f"--to ({end.isoformat()}) is before --from ({start.isoformat()})")
    if (end - start) / every > MAX_CYCLES:
        return fail(f"that is more than {MAX_CYCLES} cycles; use a larger --every or a shorter range")
    try:
        incidents = load_incidents(args.incidents) if args.incidents else []
    except IncidentsError as exc:
        return fail(exc)
    configure_logging("ERROR", "text")  # the report says what happened; logs would repeat it per cycle

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="cycle", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, what: str) -> None:
        if bar is None:
            return
        bar.total = total
        bar.n = done
        bar.set_description(what)
        bar.refresh()

    try:
        replayed = run_replay(config, start, end, every, args.out, mode=Mode(args.mode), progress=progress)
    except EXPECTED_ERRORS as exc:
        return fail(exc)
    finally:
        if bar is not None:
            bar.close()
    figures = write_report(replayed, args.out, incidents)
    if args.json:
        json.dump(figures, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    print(
        f"Replayed {figures['cycles']} cycles in {figures['wall_seconds']} s: {figures['pages_per_day']} pages/day, "
        f"{figures['actions_per_day']} actions/day, {len(figures['decisions_that_never_stop'])} decisions that never stop"
        + (f", incidents warned in time: {incidents_warned(figures)}" if incidents else "")
        + f".\nReport: {args.out / 'report.html'} (also report.md, report.json; notifications in notifications.jsonl)"
    )
    return EXIT_OK
