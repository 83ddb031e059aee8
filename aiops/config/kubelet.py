"""The kubelet's hard eviction thresholds: where the catalog's node signals really fail.

A node does not fail when its memory or disk is full. The kubelet reports MemoryPressure or
DiskPressure, and starts evicting pods, when a hard eviction threshold is crossed. The kubelet's
defaults are ``memory.available<100Mi``, ``nodefs.available<10%``, ``imagefs.available<15%`` and
``nodefs.inodesFree<5%``, but operators and managed offerings change them (AKS reserves 750Mi of
memory, many platform teams evict at 15-20 % of disk). So the thresholds are config, written as
KubeletConfiguration's ``evictionHard`` map (copy it from the nodes' kubelet config).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator

from aiops.config.base import StrictModel

# The kubelet's own defaults (pkg/kubelet/apis/config/v1beta1 DefaultEvictionHard, Linux).
DEFAULT_EVICTION_HARD = {
    "memory.available": "100Mi",
    "nodefs.available": "10%",
    "imagefs.available": "15%",
    "nodefs.inodesFree": "5%",
}
# Signals the kubelet knows that no catalog signal measures: accepted, not read.
_NOT_READ = frozenset({"imagefs.inodesFree", "pid.available", "containerfs.available", "containerfs.inodesFree",
                       "allocatableMemory.available"})
# On a filesystem the catalog measures a ratio: a threshold in bytes would be a different ratio on each disk.
_PERCENT_ONLY = frozenset({"nodefs.available", "imagefs.available", "nodefs.inodesFree"})


@dataclass(frozen=True)
class Threshold:
    """One eviction signal's threshold: a share of the resource, or (memory only) bytes."""

    text: str  # as configured, for the failure point's name ("100Mi", "10%")
    fraction: float | None = None
    bytes: float | None = None


def parse_threshold(signal: str, text: str) -> Threshold:
    value = text.strip()
    if value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            raise ValueError(f"{signal}: {text!r} is not a percentage") from None
        if not 0 < pct < 100:
            raise ValueError(f"{signal}: {text!r} must be between 0% and 100%")
        return Threshold(value, fraction=pct / 100)
    if signal in _PERCENT_ONLY:
        raise ValueError(f"{signal}: give a percentage ({text!r} is an amount; aiops measures filesystems as a share used)")
    from kubernetes.utils import parse_quantity  # the Kubernetes client's own quantity parser

    try:
        amount = float(parse_quantity(value))  # type: ignore[no-untyped-call]
    except ValueError:
        raise ValueError(f"{signal}: {text!r} is neither a percentage nor a quantity such as 750Mi") from None
    if amount <= 0:
        raise ValueError(f"{signal}: {text!r} must be more than 0")
    return Threshold(value, bytes=amount)


class KubeletConfig(StrictModel):
    # KubeletConfiguration's evictionHard, e.g. {memory.available: 750Mi, nodefs.available: 15%};
    # a signal left out keeps the kubelet's default.
    eviction_hard: dict[str, str] = Field(default_factory=dict)

    @field_validator("eviction_hard")
    @classmethod
    def _known(cls, given: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(given) - set(DEFAULT_EVICTION_HARD) - _NOT_READ)
        if unknown:
            raise ValueError(f"unknown eviction signal(s) {', '.join(unknown)}; the kubelet's are "
                             f"{', '.join(sorted({*DEFAULT_EVICTION_HARD, *_NOT_READ}))}")
        for signal, text in given.items():
            parse_threshold(signal, str(text))
        return given

    def threshold(self, signal: str) -> Threshold:
        return parse_threshold(signal, self.eviction_hard.get(signal, DEFAULT_EVICTION_HARD[signal]))
