"""A day of dcgm-exporter gauges, as OpenMetrics, for the advisor's tests against a real Prometheus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

END = 1_780_000_200  # epoch seconds, on a 5-minute step: where the day ends


def write_gauges(path: Path, rows: Sequence[tuple[str, Mapping[str, str], float]]) -> None:
    """Each of ``rows`` (field, labels, value) as a gauge holding ``value`` over the day to
    :data:`END` at 5-minute steps, each field's series together under its TYPE line."""
    lines: list[str] = []
    for name in dict.fromkeys(name for name, _, _ in rows):
        lines.append(f"# TYPE {name} gauge")
        for field, labels, value in rows:
            if field == name:
                text = ",".join(f'{k}="{v}"' for k, v in labels.items())
                lines += [f"{name}{{{text}}} {value} {t}" for t in range(END - 86400, END + 1, 300)]
    path.write_text("\n".join(lines) + "\n# EOF\n")
