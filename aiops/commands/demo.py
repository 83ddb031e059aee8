"""``aiops demo``: the whole loop, dry-run, against a local Prometheus loaded with bundled history.

Starts the Debian ``prometheus`` binary on a free loopback port with a temporary TSDB, backfills the
bundled demo scenario with promtool, runs one full cycle and prints the report. ``--serve`` keeps the
daemon, its Prometheus and its HTTP endpoints running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiops.commands._common import EXIT_DEGRADED, EXIT_OK, EXPECTED_ERRORS, fail
from aiops.commands.history import DEMO_STATE
from aiops.config import AiopsConfig, ConfigError, parse_config
from aiops.logs import configure_logging

if TYPE_CHECKING:
    from aiops.demo.livefeed import LiveFeed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="run one dry-run cycle against a local Prometheus loaded with bundled data")
    p.add_argument("--serve", action="store_true", help="keep the daemon and Prometheus running until Ctrl-C")
    p.add_argument("--port", type=int, default=8080, help="HTTP port for /metrics, /healthz, /readyz with --serve")
    p.add_argument(
        "--workdir", type=Path,
        help="keep Prometheus data and the state database here (default: Prometheus data in a temporary "
             "directory, the state database in .aiops/demo/, where `aiops history` finds it)",
    )
    p.add_argument("--json", action="store_true", help="print the cycle report as JSON")
    p.set_defaults(func=run)


def demo_config(prometheus_url: str, workdir: Path, port: int = 0, state: Path | None = None) -> AiopsConfig:
    data: dict[str, Any] = {
        # The whole bundled history, so detectors with a long reference (quality drift) see it at once.
        "prometheus": {"url": prometheus_url, "lookback": "8h", "step": "60s", "timeout": "20s"},
        "schedule": {"interval": "60s"},
        # The full path to the guarded writer, which writes nothing: the demo has no cluster.
        "safety": {"mode": "auto", "dry_run": True},
        "notify": {"channels": {}},
        "server": {"host": "127.0.0.1", "port": port},
        "state": {"path": str(state or workdir / "state.sqlite")},
        "logging": {"level": "WARNING", "format": "text"},
    }
    return parse_config(data, "<demo>")


def run(args: argparse.Namespace) -> int:
    configure_logging("WARNING", "text")
    t0 = time.perf_counter()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return _run_in(args, args.workdir, t0)
    # A temporary workdir holds the 34 MB history: gone on every way out, a failed start included.
    with tempfile.TemporaryDirectory(prefix="aiops-demo-", ignore_cleanup_errors=True) as tmp:
        return _run_in(args, Path(tmp), t0)


def _run_in(args: argparse.Namespace, workdir: Path, t0: float) -> int:
    from aiops.demo.prometheus import MissingBinary, ServerStartError, free_port
    from aiops.demo.synth import start_demo_prometheus

    state = _fresh_state(args.workdir)
    print(f"Starting a local Prometheus with the bundled demo history (data in {workdir}) ...", file=sys.stderr)
    feed = None
    port = args.port
    try:
        if args.serve:
            port = port or free_port()
            feed, extra = _serving_extras(workdir, port)
            prom = start_demo_prometheus(workdir, history=workdir / "demo.om", **extra)
        else:
            prom = start_demo_prometheus(workdir)
    except MissingBinary as exc:
        return fail(exc)
    except (ServerStartError, OSError) as exc:
        if feed is not None:
            feed.stop()
        return fail(f"could not start the demo Prometheus: {exc}")
    try:
        config = demo_config(prom.url, workdir, port, state)
        if args.serve:
            return _serve(config)
        return _once(config, args.json, t0)
    except (ConfigError, *EXPECTED_ERRORS) as exc:
        return fail(exc)
    finally:
        prom.stop()
        if feed is not None:
            feed.stop()


def shipped_rule_files() -> list[Path]:
    """alert-rules/*.rules.yml of the source checkout aiops runs from (none in a bare wheel)."""
    return sorted((Path(__file__).resolve().parents[2] / "alert-rules").glob("*.rules.yml"))


def _serving_extras(workdir: Path, port: int) -> tuple[LiveFeed, dict[str, Any]]:
    """What makes the served demo look like a cluster: the shipped recording and alert rules, a
    scrape of the daemon's /metrics, and a feed that keeps the demo series moving."""
    from aiops.demo.livefeed import LiveFeed
    from aiops.demo.synth import write_demo_history

    feed = LiveFeed(write_demo_history(workdir)).start()
    rules = shipped_rule_files()
    if not rules:
        print("alert-rules/ not found next to the package: the demo Prometheus runs without the shipped rules",
              file=sys.stderr)
    daemon = {"job_name": "aiops", "scrape_interval": "15s", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
    return feed, {"rule_files": rules, "scrape_configs": [feed.scrape_config(), daemon]}


def _fresh_state(workdir: Path | None) -> Path:
    """Where the demo keeps its audit log: under --workdir, else .aiops/demo/ (what `aiops history`
    reads when there is no config). Each demo starts from a fresh state, so cooldowns and ladder
    steps of an earlier demo never change what this one shows."""
    path = (workdir / "state.sqlite") if workdir is not None else DEMO_STATE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    except OSError as exc:  # a read-only directory: keep the state with the Prometheus data instead
        print(f"cannot keep the demo's state in {path.parent} ({exc.strerror}); it goes with the temporary data",
              file=sys.stderr)
        path = Path(tempfile.mkdtemp(prefix="aiops-demo-state-")) / "state.sqlite"
    return path


def _history_hint(state: Path) -> str:
    flag = "" if state == DEMO_STATE else f" --state {state}"
    return f"What it saw and would do is in {state}: `aiops history{flag}`."


def _once(config: AiopsConfig, as_json: bool, t0: float) -> int:
    from aiops.commands.once import print_report, run_once

    report = run_once(config, stdout_for_machines=as_json)
    print_report(report, as_json)
    if not as_json:
        print(
            f"\nDemo finished in {time.perf_counter() - t0:.1f}s (cycle {report.duration_seconds:.2f}s). "
            "Mode auto + dry-run: nothing was changed anywhere.\n"
            f"{_history_hint(config.state.path)}\n"
            "Next: `aiops demo --serve` keeps it running with /metrics, /healthz and /readyz; "
            "point `aiops run --config FILE` at your own Prometheus (see README.md)."
        )
    else:
        print(_history_hint(config.state.path), file=sys.stderr)
    return EXIT_DEGRADED if report.degraded else EXIT_OK


def _serve(config: AiopsConfig) -> int:
    from aiops.daemon import Daemon
    from aiops.engine.pipeline import Pipeline

    configure_logging("INFO", "text")
    pipeline = Pipeline.from_config(config)
    daemon = Daemon(config, pipeline)
    print(
        f"aiops demo serving on http://127.0.0.1:{daemon.server.port} (/metrics /healthz /readyz); "
        f"Prometheus at {config.prometheus.url} (the shipped rules loaded, scraping the daemon and a live feed of "
        "the demo cluster: point the dashboards in dashboards/ at it). Ctrl-C to stop.",
        file=sys.stderr,
    )
    daemon.run_forever()
    return EXIT_OK
