"""The kubelet's eviction thresholds (hard, and soft where set): where the catalog's node signals fail.

A node does not fail when its memory or disk is full. The kubelet reports MemoryPressure or
DiskPressure, and starts evicting pods, when a hard eviction threshold is crossed. The kubelet's
defaults are ``memory.available<100Mi``, ``nodefs.available<10%``, ``imagefs.available<15%`` and
``nodefs.inodesFree<5%``, but operators and managed offerings change them (AKS reserves 750Mi of
memory, many platform teams evict at 15-20 % of disk). So the thresholds are config, written as
KubeletConfiguration's ``evictionHard`` map (copy it from the nodes' kubelet config).

Soft thresholds (``evictionSoft``, each with its ``evictionSoftGracePeriod``) come before the hard
ones by design: the kubelet reports the pressure as soon as one is crossed and evicts, with the pods'
grace period, once it has held that long. Where one is set and comes first, it is where the node
fails. The grace period is not added to the lead time: a disk filling at the forecast's rate does
not wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from pydantic import Field, field_validator, model_validator

from aiops.config.base import StrictModel, parse_duration

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
    grace: str = ""  # a soft threshold's grace period, as configured; "" for a hard one

    def describe(self) -> str:
        return f"{self.text} for {self.grace}" if self.grace else self.text

    def reserves_more(self, other: Threshold) -> bool | None:
        """Whether this one is crossed before ``other`` on every node; None where it depends on the
        node's size (one is a share, the other an amount)."""
        if self.fraction is not None and other.fraction is not None:
            return self.fraction > other.fraction
        if self.bytes is not None and other.bytes is not None:
            return self.bytes > other.bytes
        return None


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


def _check_signals(given: dict[str, str]) -> None:
    unknown = sorted(set(given) - set(DEFAULT_EVICTION_HARD) - _NOT_READ)
    if unknown:
        raise ValueError(f"unknown eviction signal(s) {', '.join(unknown)}; the kubelet's are "
                         f"{', '.join(sorted({*DEFAULT_EVICTION_HARD, *_NOT_READ}))}")


class KubeletConfig(StrictModel):
    # KubeletConfiguration's evictionHard, e.g. {memory.available: 750Mi, nodefs.available: 15%};
    # a signal left out keeps the kubelet's default.
    eviction_hard: dict[str, str] = Field(default_factory=dict)
    # evictionSoft and evictionSoftGracePeriod, e.g. {nodefs.available: 15%} and {nodefs.available: 1m30s}.
    eviction_soft: dict[str, str] = Field(default_factory=dict)
    eviction_soft_grace_period: dict[str, str] = Field(default_factory=dict)

    @field_validator("eviction_hard", "eviction_soft")
    @classmethod
    def _known(cls, given: dict[str, str]) -> dict[str, str]:
        _check_signals(given)
        for signal, text in given.items():
            parse_threshold(signal, str(text))
        return given

    @field_validator("eviction_soft_grace_period")
    @classmethod
    def _durations(cls, given: dict[str, str]) -> dict[str, str]:
        _check_signals(given)
        for signal, text in given.items():
            try:
                parse_duration(text)
            except ValueError as exc:
                raise ValueError(f"{signal}: {exc}") from None
        return given

    @model_validator(mode="after")
    def _graced(self) -> Self:
        missing = sorted(set(self.eviction_soft) - set(self.eviction_soft_grace_period))
        if missing:
            raise ValueError(f"eviction_soft {', '.join(missing)} has no eviction_soft_grace_period: the kubelet "
                             "refuses a soft threshold without one (copy evictionSoftGracePeriod as well)")
        return self

    def evicts_first(self, signal: str) -> tuple[Threshold, ...]:
        """The thresholds on ``signal`` that may be the first crossed: the hard one or the soft one,
        whichever reserves more (the hard one on a tie: it needs no grace period), or both where that
        depends on the node's size."""
        hard = parse_threshold(signal, self.eviction_hard.get(signal, DEFAULT_EVICTION_HARD[signal]))
        if signal not in self.eviction_soft:
            return (hard,)
        soft = replace(parse_threshold(signal, self.eviction_soft[signal]), grace=self.eviction_soft_grace_period[signal])
        first = soft.reserves_more(hard)
        return (soft, hard) if first is None else (soft,) if first else (hard,)
