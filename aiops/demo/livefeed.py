"""Keeps a backfilled demo history live: serves each series' next value for Prometheus to scrape.

The demo's history is backfilled up to the moment it starts. Without fresh samples every series
goes stale five minutes later: stat panels turn empty and the daemon (rightly) reports itself
blind. This exporter carries the history on from its last samples, the way the cluster would
have: counters (and histogram buckets, sums and counts) grow at their last 10 minutes' rate,
gauges hold their last value. Series keep their exact label sets, so the scraped samples continue
the backfilled series instead of starting new ones (see :meth:`LiveFeed.scrape_config`).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)\s+(\S+)$")
# Rate over this much of the end of the history.
RATE_WINDOW_SECONDS = 600.0
_CUMULATIVE_SUFFIXES = ("_total", "_bucket", "_sum", "_count")


@dataclass(frozen=True)
class _Series:
    sample: str  # name{labels}, as written in the history
    value: float
    at: float
    rate: float  # per second; 0 for gauges


def _parse(path: Path) -> list[_Series]:
    """The last sample of each series and, for cumulative ones, their recent rate."""
    types: dict[str, str] = {}
    samples: dict[str, list[tuple[float, float]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                types[name] = kind.strip()
                continue
            m = _SAMPLE.match(line.strip())
            if m is not None:
                samples.setdefault(m.group(1) + (m.group(2) or ""), []).append((float(m.group(4)), float(m.group(3))))
    out = []
    for key, points in samples.items():
        points.sort()
        at, value = points[-1]
        name = key.split("{", 1)[0]
        family = next((name[: -len(s)] for s in _CUMULATIVE_SUFFIXES if name.endswith(s)), name)
        cumulative = types.get(family) in ("counter", "histogram") or types.get(name) == "counter"
        rate = 0.0
        if cumulative:
            t0, v0 = next(p for p in points if p[0] >= at - RATE_WINDOW_SECONDS)
            if at > t0 and value >= v0:  # a reset inside the window: hold the level instead
                rate = (value - v0) / (at - t0)
        out.append(_Series(key, value, at, rate))
    return out


class LiveFeed:
    """An exporter on a loopback port serving the history's series at the current time."""

    JOB = "aiops-demo-feed"

    def __init__(self, history: Path) -> None:
        self.series = _parse(Path(history))
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                body = feed.exposition(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="livefeed", daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    def exposition(self, now: float) -> str:
        """Untyped samples without timestamps: Prometheus stamps them with the scrape time."""
        lines = [f"{s.sample} {s.value + s.rate * max(0.0, now - s.at)!r}" for s in self.series]
        return "\n".join(lines) + "\n"

    def scrape_config(self, interval: str = "15s") -> dict[str, object]:
        """Honour the series' own job/instance labels and add none: a scraped sample continues
        the backfilled series of the same labels."""
        return {
            "job_name": self.JOB,
            "scrape_interval": interval,
            "honor_labels": True,
            "static_configs": [{"targets": [self.target]}],
            "metric_relabel_configs": [
                {"source_labels": ["job"], "regex": re.escape(self.JOB), "target_label": "job", "replacement": ""},
                {"source_labels": ["instance"], "regex": re.escape(self.target), "target_label": "instance",
                 "replacement": ""},
            ],
        }

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
