from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from aiops.config.base import StrictModel
from aiops.model import SIGNAL_KINDS, EntityKind


def _signal_kind(value: Any) -> Any:
    if isinstance(value, str) and value in SIGNAL_KINDS:
        return EntityKind(value)
    known = ", ".join(k for k in EntityKind if k in SIGNAL_KINDS)
    raise ValueError(f"{value!r} is not an entity kind a signal's labels identify; use one of: {known}")


# What a signal's series are about; the other entity kinds come from the cluster or the engine.
SignalKind = Annotated[EntityKind, BeforeValidator(_signal_kind)]


class FailurePointConfig(StrictModel):
    """Where the resource fails in operation, in the signal's unit (see ``aiops.model.FailurePoint``)."""

    value: float
    name: str = Field(min_length=1)
    # Label -> regular expression (full match); empty applies to every series of the signal.
    match: dict[str, str] = Field(default_factory=dict)

    @field_validator("match")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for label, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"match[{label!r}] is not a regular expression: {exc}") from None
        return v


# --- plausibility: the values a sample of a signal can physically take ------------------------
# Real exporters emit garbage that is not NaN. dcgm-exporter's DCGM_FI_DEV_GPU_UTIL reads 4294967295
# (UINT32_MAX) or 1k-200k now and then while the GPU is at 0-100 % (NVIDIA/DCGM#199), and DCGM fills a
# field it has no value for with a "blank" sentinel (dcgm_fields.h): int32 blanks 0x7ffffff0 to
# 0x7fffffff, int64 blanks 0x7ffffffffffffff0 to 0x7fffffffffffffff (about 2^63 as a float), fp64
# blanks 2^47 and up (guilbaults/slurm-job-exporter#30; gpu-monitoring-tools#92 filtered
# 9223372036854775794). Finite, so no detector's NaN handling stops them: a blank
# DCGM_FI_DEV_ROW_REMAP_FAILURE read as "row remapping failed" and evacuated the node. The collector
# (aiops/collect/plausible.py) drops a sample outside its signal's range, or a blank, as missing:
# detectors see a gap, which they handle, and the series still counts as reporting.

# The range of a signal's samples by its unit, where the unit alone bounds it; a unit not named
# here (or none) is unbounded unless the signal says (``valid``). Wide on purpose: they catch what
# no instrument can read, never a reading that is merely unusual.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    # A utilisation in percent is 0..100. dcgm-exporter and nvidia-smi average over their sample
    # period and can overshoot 100 by a rounding or a period boundary; 110 leaves room for that
    # and still rejects everything NVIDIA/DCGM#199 reports (1000 and up).
    "percent": (0.0, 110.0),
    # A share of a whole: 1 - rate(idle) jitters a little below 0, and a working set or a
    # filesystem can read a little past its limit (cgroup accounting, node memory measured against
    # the kubelet's allowance rather than the total: up to total / allowance). Ten times the whole
    # is a share of nothing (the kernel OOM-kills a container at 1.0).
    "ratio": (-0.1, 10.0),
    # kube-state-metrics' and DCGM's flags are 0 or 1.
    "bool": (0.0, 1.0),
    # No sensor a cluster reads runs below -40 °C (the industrial range's floor) or above 150 °C
    # (GPU dies shut down near 100 °C; HBM and CPUs throttle earlier).
    "celsius": (-40.0, 150.0),
    # A device draws no negative power; 1 MW is a data hall, not a GPU (2.7 kW) or a node (15 kW).
    "watts": (0.0, 1e6),
    # Counts, durations and codes that cannot be negative; no upper bound of their own.
    "seconds": (0.0, math.inf),
    "bytes": (0.0, math.inf),
    "requests": (0.0, math.inf),
    "rows": (0.0, math.inf),
    "xid": (0.0, math.inf),
    "bitmask": (0.0, math.inf),
}
# "<what>/<duration>" ("restarts/15m", "errors/10m", "requests/s"): a rate() or an increase() of a
# counter, never negative.
_RATE_UNIT = re.compile(r"^[a-z_]+/[0-9]*(ms|s|m|h|d)$")

# DCGM's sentinels as Prometheus's float64 carries them: the int32 ones exactly (below 2^53); the
# int64 ones all round to 2^63.
DCGM_INT32_BLANKS = (float(0x7FFFFFF0), float(0x7FFFFFFF))  # blank, not found, not supported, ...
UINT32_MAX = float(0xFFFFFFFF)  # a -1 read as unsigned (NVIDIA/DCGM#199)
# The fp64 blanks start here, and every int64 blank (about 2^63) is above. No GPU quantity reaches
# it: 2^47 bytes is 128 TiB (the largest GPU holds under 2^39, 512 GiB), 2^47 mJ a 1 kW GPU for 4.5 years.
# So it is safe for every GPU signal, bytes and energy counters included, where a rule at the
# int32 blanks (2^31) would clip a framebuffer in bytes (2 GiB) or an energy counter in mJ (36
# minutes at 1 kW): the int32 blanks are matched exactly instead (16 values of 2^31).
DCGM_FP64_BLANK = float(2**47)
# dcgm-exporter's label of a MIG instance (its GPU instance id under the GPU's UUID). A MIG
# instance has no utilisation: the field is left out, or 0 whatever runs (NVIDIA/dcgm-exporter#105,
# #216, #430), so utilisation is read on whole GPUs only (``{DCGM_MIG_INSTANCE}=""``).
DCGM_MIG_INSTANCE = "GPU_I_ID"
# The taint the cluster-autoscaler puts on a node it scales down (it does not cordon it) before it
# drains it and deletes the instance and the Node: the key of node_unschedulable's series for it.
AUTOSCALER_REMOVAL_TAINT = "ToBeDeletedByClusterAutoscaler"


def unit_range(unit: str) -> tuple[float, float]:
    """The values a sample in ``unit`` can take (:data:`UNIT_RANGES`); unbounded if the unit says nothing."""
    found = UNIT_RANGES.get(unit)
    if found is not None:
        return found
    if _RATE_UNIT.match(unit):
        return (0.0, math.inf)
    return (-math.inf, math.inf)


@dataclass(frozen=True)
class Plausible:
    """What the collector keeps of a signal's samples: ``low <= v <= high`` and, with ``blanks``,
    not a DCGM sentinel (:func:`aiops.collect.plausible.rejected`)."""

    low: float
    high: float
    blanks: bool

    @property
    def bounded(self) -> bool:
        return self.low > -math.inf or self.high < math.inf

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" and not a DCGM blank" if self.blanks else "")


class ValidRange(StrictModel):
    """The values a sample of a signal can physically take, in its unit. A bound left out comes
    from the unit (:data:`UNIT_RANGES`); ``.inf`` / ``-.inf`` in YAML for none."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ValidRange:
        if any(b is not None and math.isnan(b) for b in (self.min, self.max)):
            raise ValueError("valid.min and valid.max are numbers in the signal's unit, not NaN; leave one out to keep the unit's bound")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(
                f"valid.min ({self.min:g}) must be below valid.max ({self.max:g}): give the values a sample of this "
                "signal can physically take, in its unit (a percentage: {min: 0, max: 110})"
            )
        return self


class SignalConfig(StrictModel):
    """A named signal: its PromQL and how its labels identify an entity."""

    query: str = Field(min_length=1)
    entity: SignalKind
    # Entity field -> label: {"name": "pod", "namespace": "namespace"}.
    entity_labels: dict[str, str] = Field(default_factory=dict)
    # Labels copied onto the entity as attributes (container, GPU model, node of a pod, ...).
    attribute_labels: list[str] = Field(default_factory=list)
    unit: str = ""
    capacity: float | None = None
    # A service-level objective in the signal's unit (a p99 latency in seconds): above it for a
    # while is a breach, a confirmed failure (``conditions``). None: the signal has none.
    objective: float | None = None
    # Where it fails before it is full (kubelet eviction, preemption); the first that matches a series.
    failure_points: list[FailurePointConfig] = Field(default_factory=list)
    bad_direction: Literal["up", "down", "both"] = "both"
    description: str = ""
    enabled: bool = True
    # Its series exist only while a state holds (a container crash-looping, a pod on its way up):
    # none at all is the healthy case, never reported as missing data.
    sparse: bool = False
    # The values a sample can take; a sample outside is dropped as missing (a broken exporter's
    # reading). None: from the unit (UNIT_RANGES).
    valid: ValidRange | None = None
    # Drop DCGM's blank sentinels (and UINT32_MAX). None: for GPU signals (dcgm-exporter's).
    dcgm_blanks: bool | None = None

    @field_validator("entity_labels")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - {"name", "namespace"}
        if unknown:
            raise ValueError(f"entity_labels keys must be 'name' and optionally 'namespace', got {sorted(unknown)}")
        return v

    def plausible(self) -> Plausible:
        """The signal's range: ``valid``'s bounds, the unit's where it leaves one out. Raises
        ValueError when they cross (an override of one bound past the unit's other)."""
        # An override merged over the catalog (model_copy) carries its range as a plain mapping.
        valid = ValidRange.model_validate(self.valid) if self.valid is not None else ValidRange()
        low, high = unit_range(self.unit)
        low = low if valid.min is None else valid.min
        high = high if valid.max is None else valid.max
        if not low < high:
            raise ValueError(
                f"valid: the range [{low:g}, {high:g}] is empty (the unit {self.unit!r} gives [{unit_range(self.unit)[0]:g}, "
                f"{unit_range(self.unit)[1]:g}]): give both valid.min and valid.max, with min below max"
            )
        blanks = self.entity == EntityKind.GPU if self.dcgm_blanks is None else self.dcgm_blanks
        return Plausible(low, high, blanks)


class SignalOverride(StrictModel):
    """A partial signal in the user's config, merged over the catalog default of the same name."""

    query: str | None = None
    entity: SignalKind | None = None
    entity_labels: dict[str, str] | None = None
    attribute_labels: list[str] | None = None
    unit: str | None = None
    capacity: float | None = None
    objective: float | None = None
    failure_points: list[FailurePointConfig] | None = None
    bad_direction: Literal["up", "down", "both"] | None = None
    description: str | None = None
    enabled: bool | None = None
    sparse: bool | None = None
    valid: ValidRange | None = None
    dcgm_blanks: bool | None = None
