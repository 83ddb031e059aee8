"""One bad series never takes a detector down.

A detector scores thousands of series a cycle. Should one of them raise (a value no check
anticipated, a bug that only a near-flat or absurd series reaches), the whole detector would fail
and the pipeline would degrade the cycle: no action anywhere in the cluster that minute, for the
sake of one series. So every detector runs its per-series (or per-entity) work through
:func:`isolated`: the exception is logged with the series' labels, that series is skipped this
cycle, and the others are scored as usual. A detector-wide failure (bad config, a broken member)
still raises: that is a real outage of the detector and the cycle must say so.

The skipped series' entity is named to the pipeline (:func:`aiops.plugins.skipped_entity`): it has
no finding this cycle for want of a score, and an action on it must not be judged healed for that.
A subject that is neither a series nor an entity (a multivariate pool) names its entities itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiops.model import Entity, Series
from aiops.plugins import skipped_entity

log = logging.getLogger("detectors")

R = TypeVar("R")


def describe(subject: Series | Entity | str) -> str:
    """``signal{label="value",...}`` for a series, ``kind/namespace/name`` for an entity, text as is."""
    if isinstance(subject, str):
        return subject
    if isinstance(subject, Series):
        labels: Mapping[str, str] = subject.labels
        return f"{subject.signal}{{{','.join(f'{k}={v!r}' for k, v in sorted(labels.items()))}}}"
    return subject.key


def isolated(detector: str, subject: Series | Entity | str, call: Callable[..., R], *args: Any) -> R | None:
    """``call(*args)``, or None when it raises: logged with the subject's labels, the subject skipped."""
    try:
        return call(*args)
    except Exception:  # contained on purpose: see the module docstring
        if not isinstance(subject, str):
            skipped_entity(subject.entity.key if isinstance(subject, Series) else subject.key)
        log.exception(
            "detector %r skipped %s this cycle: it raised on this series only; the other series are scored",
            detector,
            describe(subject),
            extra={"detector": detector, "series": describe(subject)},
        )
        return None
