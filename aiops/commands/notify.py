"""``aiops notify --test [--route NAME]`` and ``aiops notify --outbox``.

``--test`` sends a clearly marked test message through the channels. Run it right after installing:
it reports, per channel, delivered or the exact error, and exits non-zero when any channel failed.
It sends directly (no outbox, no retries) and never touches the daemon's state, so it is safe to
run next to a running daemon.

``--outbox`` lists what is waiting in the daemon's outbox and what failed, with the last error.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from aiops.commands._common import (
    EXIT_OK,
    EXIT_USAGE,
    add_config_arg,
    fail,
    load_or_explain,
)
from aiops.config import AiopsConfig
from aiops.plugins import DeliveryStatus, PluginError

EXIT_CHANNEL_FAILED = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("notify", help="send a test notification through the channels, or show the outbox")
    add_config_arg(p)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--test", action="store_true", help="send a clearly marked test message")
    what.add_argument("--outbox", action="store_true", help="list waiting and failed notifications in the state file")
    p.add_argument("--route", metavar="NAME", help="with --test: only the channels of this notify route")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    if args.outbox:
        return show_outbox(config)
    return send_tests(config, args.route)


def show_outbox(config: AiopsConfig) -> int:
    from aiops.notify.outbox import FAILED, PENDING, REROUTED, SENDING, Outbox
    from aiops.state import StateError, Store

    if not config.state.path.exists():
        return fail(f"no state file at {config.state.path}; the daemon has not run with this config yet")
    try:
        store = Store(config.state.path)
        rows = [r for r in Outbox(store, config.notify.outbox).rows() if r["state"] in (PENDING, SENDING, FAILED, REROUTED)]
        store.close()
    except StateError as exc:
        return fail(exc)
    if not rows:
        print("outbox is empty: nothing waiting, nothing failed")
        return EXIT_OK
    print(f"{'state':<9} {'channel':<14} {'tries':>5}  {'next try (UTC)':<19}  key / last error")
    for r in rows:
        nxt = datetime.fromtimestamp(float(r["next_attempt_at"]), UTC).strftime("%Y-%m-%d %H:%M:%S") if r["state"] == PENDING else ""
        print(f"{r['state']:<9} {r['channel']:<14} {r['attempts']:>5}  {nxt:<19}  {r['key']}")
        if r["last_error"]:
            print(f"{'':<52}{r['last_error']}")
    return EXIT_OK


def send_tests(config: AiopsConfig, route: str | None) -> int:
    from aiops.notify.channels import build_notifiers
    from aiops.notify.probe import UnknownRoute, send_test
    try:
        notifiers = build_notifiers(config.notify)
    except PluginError as exc:
        return fail(f"{exc}\nFix the channel under notify.channels and run `aiops check-config` again.")
    if not notifiers:
        return fail("no notify channels are enabled; add one under notify.channels (see README.md)")
    try:
        results = send_test(notifiers, config.notify.routes, route)
    except UnknownRoute as exc:
        return fail(exc)
    finally:
        for n in notifiers.values():
            n.close()
    if not results:
        return fail(f"route {route!r} has no enabled channels")
    width = max(len(name) for name in results)
    for name, delivery in results.items():
        ok = delivery.status is DeliveryStatus.DELIVERED
        mark = "ok    " if ok else "FAILED"
        print(f"{name:<{width}}  {mark}  {delivery.detail}")
    failed = [n for n, d in results.items() if d.status is not DeliveryStatus.DELIVERED]
    if failed:
        print(f"{len(failed)} of {len(results)} channel(s) failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_CHANNEL_FAILED
    return EXIT_OK
