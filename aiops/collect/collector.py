"""The collect stage: fetch every enabled signal from Prometheus into the rolling window -> Frame.

The first cycle fetches the whole lookback; later cycles fetch only from the last fetched instant
(minus a small overlap, so late samples replace early evaluations). Signals are fetched
concurrently with a bound. A signal whose query fails is reported as missing: its series are left
out of the frame (never stale data passed off as current) and its gap is refetched next cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from aiops import metrics
from aiops.collect.prometheus import PrometheusClient, PrometheusError
from aiops.collect.window import RollingWindow
from aiops.config import AiopsConfig
from aiops.config.signals import SignalConfig
from aiops.model import Entity, Frame, Series, SignalInfo, StageError

log = logging.getLogger(__name__)

# Steps re-read on each incremental fetch: the newest evaluations may change as late samples land.
OVERLAP_STEPS = 2
# A series whose newest point is older than this many steps (and at least 5 minutes, Prometheus's
# staleness window) is treated as vanished, never as current.
STALE_STEPS = 3


def entity_of(signal: SignalConfig, labels: Mapping[str, str]) -> Entity:
    name_label = signal.entity_labels.get("name")
    name = labels.get(name_label, "") if name_label else ""
    if not name:
        # No identifying label: fall back to the full label set so entities stay distinct.
        name = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or signal.entity
    ns_label = signal.entity_labels.get("namespace")
    namespace = labels.get(ns_label, "") if ns_label else ""
    attrs = tuple((a, labels[a]) for a in signal.attribute_labels if a in labels)
    return Entity(kind=signal.entity, name=name, namespace=namespace, attributes=attrs)


def signal_info(name: str, signal: SignalConfig) -> SignalInfo:
    return SignalInfo(
        name=name,
        entity_kind=signal.entity,
        unit=signal.unit,
        capacity=signal.capacity,
        bad_direction=signal.bad_direction,
        description=signal.description,
    )


class Collector:
    def __init__(self, config: AiopsConfig, client: PrometheusClient | None = None) -> None:
        self.config = config
        self.client = client or PrometheusClient(config.prometheus)
        self.signals = config.resolved_signals()
        self.infos = {n: signal_info(n, s) for n, s in self.signals.items()}
        self.step = config.prometheus.step
        self.lookback = config.prometheus.lookback
        self.window = RollingWindow(self.lookback.total_seconds())
        self._fetched_until: dict[str, float] = {}
        # Entities by (signal, label set): building them per series per cycle was measurable at 10k.
        self._entities: dict[tuple[str, tuple[tuple[str, str], ...]], Entity] = {}
        self._pool = ThreadPoolExecutor(max_workers=config.prometheus.max_concurrency, thread_name_prefix="collect")

    def collect(self, now: datetime) -> tuple[Frame, list[StageError]]:
        now_s = now.timestamp()
        step_s = self.step.total_seconds()

        def fetch(name: str) -> tuple[str, float, list | PrometheusError]:
            last = self._fetched_until.get(name)
            start_s = max(now_s - self.lookback.total_seconds(), (last - OVERLAP_STEPS * step_s) if last else 0.0)
            start = datetime.fromtimestamp(start_s, now.tzinfo)
            try:
                return name, start_s, self.client.query_range(self.signals[name].query, start, now, self.step)
            except PrometheusError as exc:
                return name, start_s, exc

        errors: list[StageError] = []
        missing: list[str] = []
        fetched_points = 0
        answered = False
        for name, start_s, result in self._pool.map(fetch, list(self.signals)):
            if isinstance(result, PrometheusError):
                metrics.QUERIES.labels("error").inc()
                errors.append(StageError("collect", f"signal {name}: {result}", temporary=result.temporary))
                missing.append(name)
                answered = answered or not result.temporary
                continue
            answered = True
            metrics.QUERIES.labels("ok").inc()
            # Align to the step grid the query used, so the next fetch starts where this one ended.
            self.window.merge(name, (start_s // step_s) * step_s, result)
            self._fetched_until[name] = (now_s // step_s) * step_s
            fetched_points += sum(len(r) for r in result)
        metrics.PROMETHEUS_UP.set(1 if answered else 0)
        metrics.POINTS_FETCHED.inc(fetched_points)
        self.window.trim(now_s)

        series: list[Series] = []
        vanished: list[Series] = []
        fresh_after = now_s - max(300.0, STALE_STEPS * step_s)
        for name, signal in self.signals.items():
            if name in missing:
                continue
            for key, buf in self.window.keyed(name).items():
                entity = self._entities.get((name, key))
                if entity is None:
                    entity = self._entities[(name, key)] = entity_of(signal, buf.labels)
                ts = buf.timestamps
                s = Series(name, buf.labels, ts, buf.values, entity)
                (series if ts[-1] >= fresh_after else vanished).append(s)
        if len(self._entities) > 2 * max(1, self.window.series_count):
            # Series come and go (pods are replaced): keep the cache as small as the window.
            live = {(n, k) for n in self.signals for k in self.window.keyed(n)}
            self._entities = {k: v for k, v in self._entities.items() if k in live}
        metrics.SERIES.set(len(series))
        frame = Frame(
            now=now,
            series=tuple(series),
            signals=self.infos,
            step_seconds=step_s,
            missing_signals=tuple(missing),
            vanished=tuple(vanished),
        )
        return frame, errors

    def ready(self) -> bool:
        return self.client.ready()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
