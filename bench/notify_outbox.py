"""Cost of the notify stage per cycle as the number of active findings grows (issue 5).

For each N: a stage on a fresh SQLite state file with two in-process channels, one that only
de-duplicates (repeat 4h, like DingTalk/email) and one that re-posts every cycle (like
Alertmanager's refresh); cycle 1 has N new findings, then S steady cycles with the same findings
one minute apart. Prints wall time per cycle and the state file's growth. Channels record and
return at once, so the figures are the stage's own cost (routing, ledger, outbox, SQLite), not a
network's.

    python bench/notify_outbox.py --sizes 10 100 1000 --steady 5
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

from aiops.config import parse_config
from aiops.model import Entity, Evidence, Finding, Notification, Severity
from aiops.notify.stage import NotifyStage
from aiops.plugins import Delivery, DeliveryStatus, Notifier
from aiops.state import Store

START = datetime(2026, 1, 5, tzinfo=UTC)


class Sink(Notifier):
    name: ClassVar[str] = "sink"

    def __init__(self, repeat: timedelta | None = None) -> None:
        self.repeat_interval = repeat
        self.sent = 0

    def send(self, batch: Sequence[Notification]) -> Delivery:
        self.sent += len(batch)
        return Delivery(DeliveryStatus.DELIVERED)


def findings(n: int, now: datetime) -> list[Finding]:
    return [
        Finding("exhaustion", "pod_memory_usage_ratio", Entity("pod", f"pod-{i}", f"ns-{i % 20}", (("node", f"node-{i % 50}"),)),
                0.95, now, Evidence("rising", recent=tuple(0.5 + 0.01 * k for k in range(30))),
                predicted_failure_at=now + timedelta(minutes=40), severity=Severity.CRITICAL)
        for i in range(n)
    ]


def run(n: int, steady: int, directory: Path) -> dict[str, float]:
    path = directory / f"state-{n}.sqlite"
    cfg = parse_config({"notify": {"channels": {"chat": {"plugin": "console"}, "am": {"plugin": "console"}},
                                   "outbox": {"max_batch": 50}}})
    sinks = {"chat": Sink(), "am": Sink(timedelta(seconds=60))}
    stage = NotifyStage(cfg, Store(path), sinks, now=START)
    t0 = time.perf_counter()
    stage.notify(findings(n, START), [], cycle_id="c0", now=START, degraded=False)
    first = time.perf_counter() - t0
    times = []
    for k in range(1, steady + 1):
        now = START + timedelta(minutes=k)
        t0 = time.perf_counter()
        stage.notify(findings(n, now), [], cycle_id=f"c{k}", now=now, degraded=False)
        times.append(time.perf_counter() - t0)
    stage.close()
    stage.store.close()
    # The main file only: the WAL is recycled after checkpoints and does not grow with history.
    size = os.path.getsize(path)
    return {"first_s": first, "steady_s": sum(times) / len(times), "chat_sent": sinks["chat"].sent,
            "am_sent": sinks["am"].sent, "state_mib": size / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--steady", type=int, default=5)
    args = parser.parse_args()
    print(f"{'findings':>8} {'cycle 1 (s)':>12} {'steady (s)':>11} {'chat sent':>10} {'am sent':>8} {'state MiB':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            r = run(n, args.steady, Path(tmp))
            print(f"{n:>8} {r['first_s']:>12.3f} {r['steady_s']:>11.3f} {r['chat_sent']:>10.0f} {r['am_sent']:>8.0f} {r['state_mib']:>10.2f}")


if __name__ == "__main__":
    main()
