from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator

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

    @field_validator("entity_labels")
    @classmethod
    def _fields(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = set(v) - {"name", "namespace"}
        if unknown:
            raise ValueError(f"entity_labels keys must be 'name' and optionally 'namespace', got {sorted(unknown)}")
        return v


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
