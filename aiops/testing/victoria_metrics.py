"""Run a real VictoriaMetrics (Debian ``victoria-metrics``) on a loopback port, with history.

docs/scaling.md names Prometheus-compatible stores (Thanos, Mimir, VictoriaMetrics) as the way
past one Prometheus; this is how the tests hold the collector to that claim. The same OpenMetrics
files the tests backfill into Prometheus are imported here through
``/api/v1/import/prometheus`` (the text format, whose timestamps are milliseconds, not
OpenMetrics' seconds), then flushed, so that the first query sees every sample.

    with VictoriaMetricsServer(openmetrics=path) as vm:
        requests.get(f"{vm.url}/api/v1/query", params={"query": "up"})
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Self

import requests

from aiops.demo.prometheus import BackfillError, ManagedServer, find_binary, history_paths

__all__ = ["VictoriaMetricsServer", "prometheus_text"]

# Lines per request body piece: the import streams the file instead of holding it.
_LINES_PER_PIECE = 20_000


def prometheus_text(openmetrics: Path) -> Iterator[bytes]:
    """The samples of an OpenMetrics file as Prometheus text lines (timestamps in milliseconds),
    in pieces; comments, ``# TYPE`` and ``# EOF`` are dropped (the import needs none of them)."""
    piece: list[str] = []
    with openmetrics.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip() or line.startswith("#"):
                continue
            # name{labels} value timestamp: the labels may hold spaces, what follows them does not.
            end = line.rfind("}") + 1 or line.find(" ")  # after the labels, or after a bare name
            head, rest = line[:end], line[end:].split()
            try:
                value, ts = rest
                millis = round(float(ts) * 1000)
            except ValueError:
                raise BackfillError(
                    f"{openmetrics}:{number}: not 'name{{labels}} value timestamp' (no exemplars; every sample "
                    "needs its timestamp for an import of history)"
                ) from None
            piece.append(f"{head} {value} {millis}\n")
            if len(piece) >= _LINES_PER_PIECE:
                yield "".join(piece).encode()
                piece = []
    if piece:
        yield "".join(piece).encode()


class VictoriaMetricsServer(ManagedServer):
    """A real single-node VictoriaMetrics with imported history and nothing scraped.

    ``openmetrics`` files are imported at the first start only (a restart keeps the data).
    ``-search.latencyOffset=0s``: by default the newest 30 s are hidden from queries (samples may
    still be arriving), and a test reads history up to its last sample.
    """

    binary = "victoria-metrics"
    ready_path = "/health"

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        openmetrics: Path | Sequence[Path] = (),
        port: int | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, port=port, extra_args=extra_args, startup_timeout=startup_timeout)
        self.openmetrics = history_paths(openmetrics)
        self._imported = False

    def start(self) -> Self:
        super().start()
        if not self._imported:
            for path in self.openmetrics:
                self.import_openmetrics(path)
            self._imported = True
        return self

    def import_openmetrics(self, path: Path) -> None:
        """Import one file's samples and make them searchable at once."""
        if not path.is_file():
            raise BackfillError(f"cannot import {path}: no such file")
        resp = requests.post(f"{self.url}/api/v1/import/prometheus", data=prometheus_text(path), timeout=300)
        if resp.status_code != 204:
            raise BackfillError(f"VictoriaMetrics refused {path} (HTTP {resp.status_code}): {resp.text[:500]}")
        requests.get(f"{self.url}/internal/force_flush", timeout=60).raise_for_status()

    def _command(self) -> list[str]:
        assert self.data_dir is not None
        return [
            find_binary("victoria-metrics"),
            f"-storageDataPath={self.data_dir / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=WARN",
            *self.extra_args,
        ]
