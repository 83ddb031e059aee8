"""``aiops history``: what the daemon saw and did, from the audit log."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from aiops.commands._common import EXIT_OK, EXIT_USAGE, EXPECTED_ERRORS, add_config_arg, fail, load_or_explain
from aiops.state import Store
from aiops.state.audit import AuditLog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="list recent cycles, findings, decisions, actions and notifications")
    add_config_arg(p)
    p.add_argument("--state", help="state database (default: state.path from the config)")
    p.add_argument("--kind", choices=["finding", "decision", "action", "notification"], help="only this kind of event")
    p.add_argument("--entity", help="only events whose entity contains this text (e.g. pod/ml/llama-0)")
    p.add_argument("--cycle", help="only events of this cycle id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def _ts(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    path = args.state or config.state.path
    try:
        from pathlib import Path

        if not Path(path).exists():
            return fail(f"no state database at {path}: run `aiops once` or `aiops run` first, or pass --state")
        audit = AuditLog(Store(path))
        cycles = audit.cycles(limit=min(args.limit, 20)) if not (args.kind or args.entity or args.cycle) else []
        events = audit.events(kind=args.kind, entity=args.entity, cycle_id=args.cycle, limit=args.limit)
    except EXPECTED_ERRORS as exc:
        return fail(str(exc))
    if args.json:
        print(json.dumps({"cycles": cycles, "events": events}, indent=2, default=str))
        return EXIT_OK
    if cycles:
        print("Recent cycles:")
        for c in cycles:
            state = "DEGRADED" if c["degraded"] else "ok"
            print(f"  {_ts(c['started_at'])}  {c['cycle_id']}  {state:8}  {c['series']} series  mode {c['mode']}"
                  f"{' dry-run' if c['dry_run'] else ''}")
        print()
    if not events:
        print("No matching events.")
    else:
        print("Events (newest first):")
        for e in events:
            print(f"  {_ts(e['at'])}  {e['kind']:12} {e['status']:10} {e['entity']}  {e['summary']}")
    return EXIT_OK
