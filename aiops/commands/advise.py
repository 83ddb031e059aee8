"""``aiops advise``: capacity and cost advice from Prometheus history (idle GPUs, tiering, MIG, HPAs).

Prints a terminal summary and writes report.md, report.html (with PNG charts) and advice.json.
Read-only: it proposes changes and never applies them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from aiops.commands._common import EXIT_DEGRADED, EXIT_OK, EXIT_USAGE, add_config_arg, fail, load_or_explain
from aiops.config.advisor import AdvisorConfig
from aiops.config.base import parse_duration
from aiops.config.prometheus import PrometheusConfig
from aiops.model import utcnow
from aiops.demo.prometheus import MissingBinary

if TYPE_CHECKING:
    from aiops.advisor import Advice
    from aiops.config import AiopsConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "advise",
        help="GPU capacity and cost advice from history: idle GPUs, smaller classes, MIG, HPA targets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.add_argument("--prometheus-url", metavar="URL", help="Prometheus to read (default: prometheus.url)")
    p.add_argument("--window", metavar="DURATION", help="history to analyse, e.g. 7d or 36h (default: advisor.window)")
    p.add_argument("--step", metavar="DURATION", help="resolution, e.g. 5m (default: advisor.step)")
    p.add_argument("--end", metavar="TIME", help="end of the window, ISO 8601 in UTC (default: now)")
    p.add_argument("--out", type=Path, metavar="DIR", help="report directory (default: advisor.output_dir)")
    p.add_argument("--json", action="store_true", help="print the advice as JSON on stdout instead of the summary")
    p.add_argument("--no-files", action="store_true", help="print only; write no report files")
    p.add_argument(
        "--demo", action="store_true",
        help="advise on 4 days of generated history (an idle GPU, a MIG fit, a latency-bound HPA) in a local Prometheus",
    )
    p.set_defaults(func=run)


def _end(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _demo(config: AiopsConfig) -> Advice:
    """Advice on the bundled known-answer history, from a throwaway local Prometheus."""
    from aiops.advisor import advise
    from aiops.advisor.demo import DAYS, scenario_end, start_demo_prometheus

    end = scenario_end()
    with tempfile.TemporaryDirectory(prefix="aiops-advise-demo-") as tmp:
        prom = start_demo_prometheus(Path(tmp), end)
        try:
            demo = config.model_copy(
                update={
                    "prometheus": PrometheusConfig.model_validate({"url": prom.url}),
                    "advisor": config.advisor.model_copy(update={"window": timedelta(days=DAYS)}),
                }
            )
            return advise(demo, end)
        finally:
            prom.stop()


def run(args: argparse.Namespace) -> int:
    from aiops.advisor import AdvisorError, advise, terminal_summary, write_reports
    from aiops.advisor.render import to_json

    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    overrides: dict[str, object] = {}
    try:
        if args.window:
            overrides["window"] = parse_duration(args.window)
        if args.step:
            overrides["step"] = parse_duration(args.step)
        end = _end(args.end)
    except ValueError as exc:
        return fail(f"{exc}. Durations look like 7d, 36h or 5m; --end like 2026-11-20T00:00:00Z.")
    if args.out:
        overrides["output_dir"] = args.out
    if overrides:
        try:
            advisor = AdvisorConfig.model_validate({**config.advisor.model_dump(), **overrides})
        except ValidationError as exc:
            return fail(f"invalid option: {exc.errors(include_url=False)[0]['msg'].removeprefix('Value error, ')}")
        config = config.model_copy(update={"advisor": advisor})
    if args.prometheus_url:
        try:
            prometheus = PrometheusConfig.model_validate({**config.prometheus.model_dump(), "url": args.prometheus_url})
        except ValidationError:
            return fail(f"--prometheus-url {args.prometheus_url!r} is not a URL; give one like http://127.0.0.1:9090")
        config = config.model_copy(update={"prometheus": prometheus})
    try:
        advice = _demo(config) if args.demo else advise(config, end)
    except AdvisorError as exc:
        return fail(exc, EXIT_DEGRADED)
    except MissingBinary as exc:
        return fail(f"{exc} (--demo runs a local Prometheus)")
    if args.json:
        print(json.dumps(to_json(advice), indent=2))
    else:
        print(terminal_summary(advice))
    if not args.no_files:
        try:
            files = write_reports(advice, config.advisor.output_dir)
        except OSError as exc:
            where = config.advisor.output_dir
            return fail(f"cannot write the report to {where}: {exc.strerror}. Pick another --out.", EXIT_DEGRADED)
        extra = f"{files.markdown.name}, {files.json.name}, {len(files.charts)} charts"
        print(f"\nreport: {files.html}  ({extra})", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK
