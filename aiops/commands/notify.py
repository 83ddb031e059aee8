"""``aiops notify --test [--route NAME]``: send a clearly marked test message through the channels.

Run it right after installing: it reports, per channel, delivered or the exact error, and exits
non-zero when any channel failed. It sends directly (no outbox, no retries) and never touches the
daemon's state, so it is safe to run next to a running daemon.
"""

from __future__ import annotations

import argparse
import sys

from aiops.commands._common import EXIT_OK, EXIT_USAGE, add_config_arg, fail, load_or_explain
from aiops.plugins import DeliveryStatus, PluginError

EXIT_CHANNEL_FAILED = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("notify", help="send a test notification through the configured channels")
    add_config_arg(p)
    p.add_argument("--test", action="store_true", required=True, help="send a clearly marked test message")
    p.add_argument("--route", metavar="NAME", help="only the channels of this notify route")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiops.notify.stage import build_notifiers, send_test

    config = load_or_explain(args.config)
    if config is None:
        return EXIT_USAGE
    try:
        notifiers = build_notifiers(config.notify)
    except PluginError as exc:
        return fail(f"{exc}\nFix the channel under notify.channels and run `aiops check-config` again.")
    if not notifiers:
        return fail("no notify channels are enabled; add one under notify.channels (see README.md)")
    try:
        results = send_test(notifiers, config.notify.routes, args.route)
    except KeyError as exc:
        return fail(str(exc.args[0]))
    finally:
        for n in notifiers.values():
            n.close()
    if not results:
        return fail(f"route {args.route!r} has no enabled channels")
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
