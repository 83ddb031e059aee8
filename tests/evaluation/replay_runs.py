"""Run ``aiops replay`` over a generated cluster history in a real Prometheus, for scenario tests."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import yaml

from aiops.cli import main
from aiops.demo.prometheus import PrometheusServer
from aiops.testing.cluster_history import ClusterHistory, incidents_yaml


@contextmanager
def logging_kept() -> Iterator[None]:
    """``main`` configures logging for a real process; a module-scoped fixture runs before the
    per-test restore in conftest, so put the root logger and library levels back here."""
    names = ("", "urllib3", "apscheduler", "kubernetes", "dateparser")
    levels = {n: logging.getLogger(n).level for n in names}
    handlers = list(logging.getLogger().handlers)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        root = logging.getLogger()
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)


@dataclass
class Replayed:
    hist: ClusterHistory
    report: dict[str, Any]

    @property
    def figures(self) -> dict[str, Any]:
        return self.report["figures"]

    def incident(self, prefix: str) -> dict[str, Any]:
        return next(r for r in self.figures["incidents"] if r["name"].startswith(prefix))

    def decisions(self, action: str, entity_glob: str) -> list[dict[str, Any]]:
        return [d for d in self.report["decisions"] if d["action"] == action and fnmatchcase(d["entity"], entity_glob)]

    def pages_on(self, entity_glob: str) -> list[dict[str, Any]]:
        return [p for p in self.figures["pages_outside_incidents"] if fnmatchcase(p["entity"], entity_glob)]


def replay(hist: ClusterHistory, work: Path, *, from_h: float, to_h: float | None = None, every: str = "2m",
           config: dict[str, Any] | None = None) -> Replayed:
    """Backfill ``hist`` and replay it with the default config (plus ``config``) from ``from_h``
    hours after its start to ``to_h`` (default: its end)."""
    hist.write_openmetrics(work / "history.om")
    (work / "incidents.yaml").write_text(incidents_yaml(hist))
    end = hist.end if to_h is None else hist.at(to_h)
    with PrometheusServer(work / "prometheus", openmetrics=work / "history.om") as prom, logging_kept():
        cfg = dict(config or {})
        cfg["prometheus"] = {"url": prom.url, **cfg.get("prometheus", {})}
        (work / "aiops.yaml").write_text(yaml.safe_dump(cfg))
        rc = main(["replay", "--config", str(work / "aiops.yaml"),
                   "--from", (hist.spec.start + timedelta(hours=from_h)).isoformat(), "--to", end.isoformat(),
                   "--every", every, "--incidents", str(work / "incidents.yaml"), "--out", str(work / "out"),
                   "--no-progress"])
    assert rc == 0
    (work / "history.om").unlink()
    return Replayed(hist, json.loads((work / "out" / "report.json").read_text()))
