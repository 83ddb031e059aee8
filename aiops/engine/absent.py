"""Signals that went quiet: Prometheus's ``absent()`` case, as findings.

A signal that had series and now has none with a recent point is news in itself: the exporter
died, a relabelling dropped it, or scraping broke. Reporting "nothing looks wrong" would be the
worst answer, because no data is not health. The finding is for people only: policy never acts on
missing data (:mod:`aiops.engine.decide` refuses to match it).
"""

from __future__ import annotations

from aiops.model import Entity, EntityKind, Evidence, Finding, Frame, from_epoch

DETECTOR = "absent"
# Warning, not critical: something is unknown rather than known to be failing.
SCORE = 0.8


def absent_findings(frame: Frame) -> list[Finding]:
    out = []
    for signal, last_seen in sorted(frame.absent_signals.items()):
        minutes = max(0.0, (frame.now.timestamp() - last_seen) / 60)
        stopped = sum(1 for s in frame.vanished if s.signal == signal)
        gone = f"its {stopped} series stopped reporting" if stopped else "it has no series any more"
        out.append(Finding(
            detector=DETECTOR,
            signal=signal,
            entity=Entity(kind=EntityKind.SIGNAL, name=signal),
            score=SCORE,
            observed_at=frame.now,
            evidence=Evidence(
                f"{gone}; last point at {from_epoch(last_seen):%H:%M UTC} ({minutes:.0f} min ago): "
                "check its exporter and the scrape",
                facts={"last_seen": from_epoch(last_seen).isoformat(), "vanished_series": stopped},
            ),
        ))
    return out
