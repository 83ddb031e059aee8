"""``aiops history``: what the daemon saw and did, from the audit log."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiops.commands._common import EXIT_OK, EXIT_USAGE, EXPECTED_ERRORS, add_config_arg, fail, load_or_explain
from aiops.state import Store
from aiops.state.audit import AuditLog


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="list recent cycles, findings, decisions, actions and notifications")
    add_config_arg(p)
    p.add_argument("--state", help="state database (default: state.path from the config)")
    p.add_argument("--kind", choices=["finding", "decision", "action", "notification", "inbound_refused"], help="only this kind of event")
    p.add_argument("--entity", help="only events whose entity contains this text (e.g. pod/ml/llama-0)")
    p.add_argument("--cycle", help="only events of this cycle id")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="everything, nested records as JSON objects")
    p.add_argument(
        "--stats", action="store_true",
        help="per detector: predictions, confirmed, false positives, precision, median lead time, actions healed",
    )
    p.set_defaults(func=run)


# Columns the audit log stores as JSON text: --json hands them on as objects, not strings in strings.
JSON_COLUMNS = ("detail", "stage_seconds", "errors")
# Where `aiops demo` keeps its audit log (relative to the directory it was run in).
DEMO_STATE = Path(".aiops/demo/state.sqlite")


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for column in JSON_COLUMNS:
        if isinstance(out.get(column), str):
            try:
                out[column] = json.loads(out[column])
            except ValueError:
                pass  # an older row written as plain text stays text
    return out


def _ts(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S") if epoch else "-"


def detector_stats(store: Store) -> list[dict[str, object]]:
    """What an operator reads before moving a detector from suggest to auto."""
    from dataclasses import asdict

    from aiops.engine.predictions import DetectorStats, PredictionLedger

    stats = {s.detector: s for s in PredictionLedger(store).stats()}
    healed: dict[str, dict[str, int]] = {}
    tables = {r["name"] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "action_outcomes" in tables:
        for r in store.query("SELECT status, decision FROM action_outcomes WHERE status IN ('healed', 'not_healed')"):
            detector = json.loads(r["decision"]).get("finding", {}).get("detector", "?")
            counts = healed.setdefault(detector, {"healed": 0, "not_healed": 0})
            counts[r["status"]] += 1
    rows = []
    for detector in sorted(set(stats) | set(healed)):
        s = stats.get(detector) or DetectorStats(detector, 0, 0, 0, 0, 0, None)
        rows.append({**asdict(s), "precision": s.precision, **healed.get(detector, {"healed": 0, "not_healed": 0})})
    return rows


def _print_stats(stats: list[dict[str, object]]) -> None:
    if not stats:
        print("No predictions or action outcomes recorded yet.")
        return
    header = f"{'detector':16} {'predictions':>11} {'open':>5} {'confirmed':>9} {'false+':>7} {'prevented':>9} " \
             f"{'precision':>9} {'median lead':>11} {'healed':>7} {'not healed':>10}"
    print(header)
    for r in stats:
        precision = "-" if r["precision"] is None else f"{r['precision']:.2f}"
        lead = "-" if r["median_lead_seconds"] is None else f"{float(r['median_lead_seconds']) / 60:.0f} min"  # type: ignore[arg-type]
        print(f"{r['detector']!s:16} {r['predictions']:>11} {r['open']:>5} {r['confirmed']:>9} {r['false_positives']:>7} "
              f"{r['prevented']:>9} {precision:>9} {lead:>11} {r['healed']:>7} {r['not_healed']:>10}")


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    path = Path(args.state or config.state.path)
    if not path.exists() and args.state is None and args.config is None and DEMO_STATE.exists():
        # No config and no local state yet: the one database there is, is the last demo's.
        print(f"(showing the audit log of the last `aiops demo`, {DEMO_STATE})", file=sys.stderr)
        path = DEMO_STATE
    try:
        if not path.exists():
            return fail(f"no state database at {path}: run `aiops once` or `aiops run` first, or pass --state")
        store = Store(path, read_only=True)  # read-only: also on a read-only mount of the daemon's volume
        wal = path.with_name(path.name + "-wal")
        if store.immutable and wal.exists() and wal.stat().st_size:
            print(f"(read as the file is on its read-only or full volume: what {wal} still holds is not shown)",
                  file=sys.stderr)
        if args.stats:
            stats = detector_stats(store)
            if args.json:
                print(json.dumps({"detectors": stats}, indent=2, default=str))
            else:
                _print_stats(stats)
            return EXIT_OK
        audit = AuditLog(store)
        cycles = audit.cycles(limit=min(args.limit, 20)) if not (args.kind or args.entity or args.cycle) else []
        events = audit.events(kind=args.kind, entity=args.entity, cycle_id=args.cycle, limit=args.limit)
    except EXPECTED_ERRORS as exc:
        return fail(exc)
    if args.json:
        print(json.dumps({"cycles": [_decoded(c) for c in cycles], "events": [_decoded(e) for e in events]},
                         indent=2, default=str))
        return EXIT_OK
    width = max(80, shutil.get_terminal_size((120, 24)).columns)
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
            head = f"  {_ts(e['at'])}  {e['kind']:12} {e['status']:10} {e['entity']}  "
            # One event, one line (newlines in a summary folded), cut to the terminal: --json has it all.
            line = head + " ".join(str(e["summary"]).split())
            print(line if len(line) <= width else line[: width - 1] + "…")
    return EXIT_OK
