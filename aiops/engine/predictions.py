"""Every prediction is checked: confirmed, prevented, or a false positive — and counted per detector.

A finding with a predicted failure time opens a prediction for its key (detector, signal, entity).
Its *horizon* is the predicted time plus a grace period. Then, on later cycles:

- a *confirmed* failure on the same entity (OOMKilled, NotReady, XID 79, or the predicted signal at
  its limit) before the horizon confirms it; the lead time is how long before the confirmation the
  prediction was first raised;
- if the horizon passes without a failure, the prediction is *prevented* when an action was applied
  to the entity while it was open (the action may explain the recovery), and a *false positive*
  otherwise — its preparatory actions are then due to be rolled back;
- if the horizon passes while nothing is measured on the entity (a GPU off the bus: its series
  vanished; a detector skipped it), the prediction is *unobserved*: neither confirmed nor false,
  outside the precision, and nothing is rolled back (the cordon stays on a GPU that may be dead).

The figures per detector (predictions, confirmed, false positives, precision, median lead time)
are exported on /metrics and shown by ``aiops history --stats``; policy can require a minimum
measured precision before a detector's predictions may trigger automatic actions. They cover the
predictions closed within ``state.audit_retention`` (and every open one): older ones are pruned, as
the audit log's rows are, so a flapping forecast cannot grow the ledger without bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge

from aiops import metrics
from aiops.model import ActionResult, ActionStatus, Decision, Finding, Rung, from_epoch
from aiops.state import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    key TEXT NOT NULL, opened_at REAL NOT NULL, detector TEXT NOT NULL, signal TEXT NOT NULL,
    entity TEXT NOT NULL, predicted_at REAL NOT NULL, horizon REAL NOT NULL,
    acted INTEGER NOT NULL DEFAULT 0, outcome TEXT, closed_at REAL, lead_seconds REAL,
    PRIMARY KEY (key, opened_at)
);
CREATE INDEX IF NOT EXISTS predictions_open ON predictions (outcome, entity);
CREATE INDEX IF NOT EXISTS predictions_detector ON predictions (detector, outcome);
"""

OPEN, CONFIRMED, FALSE_POSITIVE, PREVENTED = None, "confirmed", "false_positive", "prevented"
UNOBSERVED = "unobserved"

PREDICTIONS = Counter(
    "aiops_predictions",
    "Predictions closed, by detector and outcome (confirmed, false_positive, prevented, unobserved).",
    ["detector", "outcome"],
    registry=metrics.REGISTRY,
)
PRECISION = Gauge(
    "aiops_detector_precision",
    "Measured precision of a detector's predictions: confirmed / (confirmed + false positives).",
    ["detector"],
    registry=metrics.REGISTRY,
)
MEDIAN_LEAD = Gauge(
    "aiops_detector_median_lead_seconds",
    "Median lead time of a detector's confirmed predictions.",
    ["detector"],
    registry=metrics.REGISTRY,
)
OPEN_PREDICTIONS = Gauge("aiops_predictions_open", "Predictions waiting for their horizon.", ["detector"], registry=metrics.REGISTRY)


@dataclass(frozen=True)
class ClosedPrediction:
    key: str
    detector: str
    signal: str
    entity: str
    outcome: str
    opened_at: datetime
    lead_seconds: float | None


@dataclass(frozen=True)
class DetectorStats:
    detector: str
    predictions: int
    open: int
    confirmed: int
    false_positives: int
    prevented: int
    median_lead_seconds: float | None

    @property
    def precision(self) -> float | None:
        judged = self.confirmed + self.false_positives
        return self.confirmed / judged if judged else None


def _grace(lead: timedelta) -> timedelta:
    # Forecasts are uncertain in proportion to how far ahead they look.
    return max(timedelta(minutes=15), lead * 0.25)


# Closed predictions past the retention are deleted at most this often (a scan of the table).
PRUNE_EVERY = timedelta(hours=1)


class PredictionLedger:
    def __init__(self, store: Store, retention: timedelta = timedelta(days=30)) -> None:
        self.store = store
        self.retention = retention
        self._pruned_at: datetime | None = None
        store.ensure_schema(SCHEMA)

    def mark_acted(self, results: Sequence[ActionResult], decisions: Sequence[Decision] = ()) -> None:
        """Record applied actions: an open prediction whose entity was acted on is not a false positive.

        A *preparation* (the ladder's prepare rung: a cordon, a pre-scale) does not explain a
        recovery, so it does not count; only a remediation that acts on the cause does.
        """
        preparing = {d.id for d in decisions if d.rung is Rung.PREPARE}
        done = [r for r in results if r.status is ActionStatus.APPLIED and r.decision_id not in preparing]
        by_id = {d.id: d for d in decisions}
        applied = {r.target.key for r in done}
        applied |= {r.plan.target.key for r in done if r.plan is not None}
        # The finding that led to the action names the entity whose prediction it may have prevented.
        applied |= {by_id[r.decision_id].finding.entity.key for r in done if r.decision_id in by_id}
        if applied:
            with self.store.transaction() as conn:
                conn.executemany(
                    "UPDATE predictions SET acted = 1 WHERE entity = ? AND outcome IS NULL", [(e,) for e in applied]
                )

    def observe(
        self,
        findings: Sequence[Finding],
        now: datetime,
        results: Sequence[ActionResult] = (),
        unseen: Collection[str] = (),
    ) -> list[ClosedPrediction]:
        """Open, confirm and expire predictions from one cycle's findings. ``unseen``: keys of the
        entities nothing is measured on this cycle (their horizon passing proves nothing)."""
        self.mark_acted(results)
        now_s = now.timestamp()
        closed: list[ClosedPrediction] = []
        failing = {f.entity.key for f in findings if f.confirmed}
        # The predicted signal itself at its limit is a confirmation too.
        failing |= {
            f.entity.key for f in findings
            if f.predicted_failure_at is not None and f.predicted_failure_at <= now and f.score >= 0.9
        }
        with self.store.transaction() as conn:
            for f in findings:
                if f.confirmed or f.predicted_failure_at is None or f.predicted_failure_at <= now:
                    continue
                predicted = f.predicted_failure_at.timestamp()
                horizon = predicted + _grace(f.predicted_failure_at - now).total_seconds()
                row = conn.execute(
                    "SELECT opened_at FROM predictions WHERE key = ? AND outcome IS NULL", (f.key,)
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO predictions (key, opened_at, detector, signal, entity, predicted_at, horizon) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (f.key, now_s, f.detector, f.signal, f.entity.key, predicted, horizon),
                    )
                else:
                    # A refreshed forecast moves the horizon; the lead time still counts from the first.
                    conn.execute(
                        "UPDATE predictions SET predicted_at = ?, horizon = ? WHERE key = ? AND outcome IS NULL",
                        (predicted, horizon, f.key),
                    )
            for row in conn.execute("SELECT * FROM predictions WHERE outcome IS NULL").fetchall():
                outcome: str | None = None
                lead: float | None = None
                if row["entity"] in failing:
                    outcome, lead = CONFIRMED, now_s - row["opened_at"]
                elif row["horizon"] < now_s:
                    outcome = UNOBSERVED if row["entity"] in unseen else PREVENTED if row["acted"] else FALSE_POSITIVE
                if outcome is None:
                    continue
                conn.execute(
                    "UPDATE predictions SET outcome = ?, closed_at = ?, lead_seconds = ? WHERE key = ? AND opened_at = ?",
                    (outcome, now_s, lead, row["key"], row["opened_at"]),
                )
                closed.append(ClosedPrediction(row["key"], row["detector"], row["signal"], row["entity"], outcome,
                                               from_epoch(row["opened_at"]), lead))
        for c in closed:
            PREDICTIONS.labels(c.detector, c.outcome).inc()
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self.prune(now - self.retention)
            self._pruned_at = now
        self.export()
        return closed

    def prune(self, before: datetime) -> int:
        """Delete the predictions closed before ``before``; returns how many."""
        with self.store.transaction() as conn:
            return int(conn.execute("DELETE FROM predictions WHERE outcome IS NOT NULL AND closed_at < ?",
                                    (before.timestamp(),)).rowcount)

    def stats(self, detector: str | None = None) -> list[DetectorStats]:
        """Per detector (or for one): counts in SQL, so a long ledger is not read into memory."""
        where, params = ("WHERE detector = ?", (detector,)) if detector is not None else ("", ())
        counts = self.store.query(
            "SELECT detector, COUNT(*) AS n, SUM(outcome IS NULL) AS open, SUM(outcome = ?) AS confirmed, "
            f"SUM(outcome = ?) AS false_positives, SUM(outcome = ?) AS prevented FROM predictions {where} "
            "GROUP BY detector ORDER BY detector",
            (CONFIRMED, FALSE_POSITIVE, PREVENTED, *params),
        )
        leads: dict[str, list[float]] = {}
        for r in self.store.query(
            "SELECT detector, lead_seconds FROM predictions WHERE outcome = ? AND lead_seconds IS NOT NULL"
            + (" AND detector = ?" if detector is not None else ""),
            (CONFIRMED, *params),
        ):
            leads.setdefault(r["detector"], []).append(r["lead_seconds"])
        return [
            DetectorStats(
                detector=r["detector"],
                predictions=r["n"],
                open=r["open"] or 0,
                confirmed=r["confirmed"] or 0,
                false_positives=r["false_positives"] or 0,
                prevented=r["prevented"] or 0,
                median_lead_seconds=statistics.median(leads[r["detector"]]) if r["detector"] in leads else None,
            )
            for r in counts
        ]

    def precision(self, detector: str) -> tuple[float | None, int]:
        """(precision, number of judged predictions) for one detector."""
        for s in self.stats(detector):
            return s.precision, s.confirmed + s.false_positives
        return None, 0

    def export(self) -> None:
        for s in self.stats():
            OPEN_PREDICTIONS.labels(s.detector).set(s.open)
            if s.precision is not None:
                PRECISION.labels(s.detector).set(s.precision)
            if s.median_lead_seconds is not None:
                MEDIAN_LEAD.labels(s.detector).set(s.median_lead_seconds)
