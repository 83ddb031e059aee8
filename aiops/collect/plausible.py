"""Samples no instrument can read become missing, in one place, before any detector sees them.

Real exporters emit garbage that is not NaN: dcgm-exporter's GPU utilisation of 4294967295
(NVIDIA/DCGM#199), DCGM's "blank" sentinels for a field with no value (int32 0x7ffffff0..., int64
0x7ffffffffffffff0..., fp64 2^47). Finite, so every detector took them as measurements: a blank
on DCGM_FI_DEV_ROW_REMAP_FAILURE read as "row remapping failed" and evacuated a healthy node.

Each signal declares the values its samples can take (:meth:`SignalConfig.plausible
<aiops.config.signals.SignalConfig.plausible>`: from its unit, overridable in the config). The
collector screens every decoded chunk against it as the chunk arrives (:meth:`Screen.block`),
for the cycle's fetch and for the days a detector learns from alike, and writes a rejected sample
as NaN: a gap, which detectors already handle. NaN, not a missing point: the series did report
at that instant, so a rejected sample never makes it look vanished ("vanishing series are
evidence", aiops/engine/correlate.py) and never makes its signal absent.

Cheap on the steady cycle: one or two vectorised comparisons per chunk (the DCGM sentinels are
all above the lowest int32 blank, so one threshold stands for them until something crosses it);
the detail is worked out only for a chunk that has something to drop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aiops import metrics
from aiops.collect.decode import Block
from aiops.collect.window import LabelKey, label_key
from aiops.config.signals import DCGM_FP64_BLANK, DCGM_INT32_BLANKS, UINT32_MAX, Plausible

log = logging.getLogger(__name__)

OUT_OF_RANGE = "out_of_range"
SENTINEL = "sentinel"
REASONS = (OUT_OF_RANGE, SENTINEL)
# Series already named in the log (and counted to a sample), per signal, at most: past it (labels
# churning through a broken exporter's pods) the counter still counts and the record starts again.
MAX_WARNED = 10_000
# Series kept by name for reports (Screen.named).
MAX_NAMED = 5


def sentinels(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are DCGM blanks or UINT32_MAX (see aiops/config/signals.py)."""
    found: np.ndarray = ((values >= DCGM_INT32_BLANKS[0]) & (values <= DCGM_INT32_BLANKS[1])) | (
        values == UINT32_MAX) | (values >= DCGM_FP64_BLANK)
    return found


# dcgm_fields.h: each blank is a base plus 0 (no value), 1 (not found), 2 (not supported) or 3 (not
# permissioned); the int64 ones all round to 2^63 in a float64, so they cannot be told apart.
_BLANK_MEANINGS = (
    "the field has no value",
    "the field was not found",
    "the field is not supported on this GPU",
    "dcgm-exporter may not read the field",
)
_INT64_BLANK_FLOAT = float(0x7FFFFFFFFFFFFFF0)


def sentinel_name(value: float) -> str:
    """Which of :func:`sentinels` ``value`` is, in words an operator can act on ("not supported" is
    permanent on that GPU; "no value" comes and goes)."""
    if value == UINT32_MAX:
        return "UINT32_MAX (a -1 read as unsigned: the driver had no value)"
    if value >= _INT64_BLANK_FLOAT:
        return "DCGM's int64 blank (no value, not found, not supported or not permitted: they read alike)"
    for kind, base in (("int32", DCGM_INT32_BLANKS[0]), ("fp64", DCGM_FP64_BLANK)):
        offset = value - base
        if 0 <= offset < len(_BLANK_MEANINGS) and offset == int(offset):
            return f"DCGM's {kind} blank ({_BLANK_MEANINGS[int(offset)]})"
    return "DCGM's int32 blank" if value <= DCGM_INT32_BLANKS[1] else "DCGM's fp64 blank"


def rejected(values: np.ndarray, p: Plausible) -> tuple[np.ndarray, np.ndarray] | None:
    """(out of range, sentinel) masks over ``values``, disjoint; None when nothing is rejected
    (NaN never is: it is a gap already)."""
    # One threshold for the quick pass: the lowest sentinel, where it is below the range's top.
    top = min(p.high, DCGM_INT32_BLANKS[0]) if p.blanks else p.high
    if top == np.inf:
        suspect = values < p.low if p.low > -np.inf else None
    elif p.low > -np.inf:
        suspect = (values < p.low) | (values > top)
    else:
        suspect = values > top
    if suspect is None or not suspect.any():
        return None
    blank = sentinels(values) if p.blanks else np.zeros(values.shape, dtype=bool)
    outside = ((values < p.low) | (values > p.high)) & ~blank
    if not (outside.any() or blank.any()):
        return None  # above the lowest sentinel, inside the range and no sentinel (a 3e9 bytes)
    return outside, blank


@dataclass
class Screen:
    """One signal's screen: drops, counts and names (once per series) what it rejects."""

    signal: str
    plausible: Plausible
    unit: str = ""
    # Names the series for the log line (the collector's entity of its labels).
    describe: Callable[[dict[str, str]], str] = lambda labels: ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    # The newest sample counted per series (a cycle's overlap reads the newest samples again); a
    # series in it has been named in the log.
    counted_to: dict[LabelKey, float] = field(default_factory=dict)
    # What it dropped since it was made, by reason (each sample once, as aiops_samples_rejected_total
    # counts them), and the first series it named: for a report that outlives the log (aiops replay).
    dropped: dict[str, int] = field(default_factory=dict)
    named: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for reason in REASONS:  # at 0 from the start, so increase() sees the first rejection
            metrics.SAMPLES_REJECTED.labels(self.signal, reason)

    @property
    def active(self) -> bool:
        return self.plausible.bounded or self.plausible.blanks

    def block(self, block: Block) -> Block:
        """``block`` with every rejected sample NaN (the same block when there is none)."""
        if not self.active or not block.points:
            return block
        masks = rejected(block.values, self.plausible)
        if masks is None:
            return block
        outside, blank = masks
        drop = outside | blank
        self._count(block, drop, outside, blank)
        return Block(block.labels, block.counts, block.timestamps, np.where(drop, np.nan, block.values))

    def _count(self, block: Block, drop: np.ndarray, outside: np.ndarray, blank: np.ndarray) -> None:
        at = np.flatnonzero(drop)
        # The series of each rejected point: its index among the chunk's series (ascending, as
        # ``at`` is), so each series' points are one run.
        which = np.searchsorted(np.cumsum(block.counts), at, side="right")
        bounds = np.flatnonzero(np.diff(which)) + 1
        if len(self.counted_to) >= MAX_WARNED:
            self.counted_to.clear()
        n_outside = n_blank = 0
        for first, points in zip([0, *bounds.tolist()], np.split(at, bounds)):
            labels = block.labels[int(which[first])]
            key = label_key(labels)
            # Each sample once: the next cycle's overlap reads the newest ones again.
            seen = self.counted_to.get(key)
            ts = block.timestamps[points]
            new = points if seen is None else points[ts > seen]
            if new.size:
                n_outside += int(np.count_nonzero(outside[new]))
                n_blank += int(np.count_nonzero(blank[new]))
                self.counted_to[key] = float(ts.max())
            if seen is not None:
                continue  # named in the log already
            series = self.describe(labels)
            if len(self.named) < MAX_NAMED:
                self.named.append(series)
            point = int(points[0])
            value = float(block.values[point])
            why = (
                sentinel_name(value) if blank[point]
                else f"outside the values a sample in {self.unit or 'its unit'} can take"
            )
            log.warning(
                "signal %s: dropped %r from %s as missing: %s; valid: %s; fix the exporter, or if such values are real, "
                "set signals.%s.valid (or dcgm_blanks: false) in the config. Later ones from this series are only counted "
                "(aiops_samples_rejected_total)",
                self.signal, value, series, why, self.plausible.describe(), self.signal,
            )
        for reason, n in ((OUT_OF_RANGE, n_outside), (SENTINEL, n_blank)):
            if n:
                metrics.SAMPLES_REJECTED.labels(self.signal, reason).inc(n)
                self.dropped[reason] = self.dropped.get(reason, 0) + n
