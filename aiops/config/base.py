"""Shared building blocks of the config model: strict models, durations, secret references."""

from __future__ import annotations

import math
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr, model_validator

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h|d|w))+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# Longer than any interval, retention or horizon a user means; past it a typo is more likely.
MAX_DURATION = timedelta(days=3650)


def _shown(value: Any) -> str:
    """``value`` as an error shows it: a typo's few characters, not a screenful of digits."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4300-digit limit for str()
        return "a number of over 4300 digits"
    return text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"


def _bounded(seconds: float, shown: Any) -> timedelta:
    if math.isnan(seconds):
        raise ValueError("a duration cannot be NaN")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration {_shown(shown)} is longer than {MAX_DURATION.days}d, the longest accepted")
    return timedelta(seconds=seconds)


def parse_duration(value: Any) -> timedelta:
    """Accept Prometheus-style durations ("90s", "5m", "1h30m", "7d") or plain seconds, up to 3650d."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration like '30s', '5m' or '1h', not a boolean")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float: longer than any duration accepted
            seconds = math.inf if value > 0 else -math.inf
        return _bounded(seconds, value)
    if isinstance(value, str):
        text = value.strip()
        if _DURATION.match(text):
            return _bounded(sum(float(n) * _UNIT_SECONDS[u] for n, u in _PART.findall(text)), value)
    raise ValueError(f"expected a duration like '30s', '5m', '1h' or '7d', got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(StrictModel):
    """Where a secret comes from: an environment variable or a file (a mounted Kubernetes Secret).

    Secrets are never written in the YAML in clear. The resolved value is a ``SecretStr`` whose
    repr and str are masked, so it cannot leak into logs by accident.
    """

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of 'env' or 'file'")
        return self

    def resolve(self) -> SecretStr:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ValueError(f"environment variable {self.env} is not set")
            return SecretStr(value)
        assert self.file is not None
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"cannot read secret file {self.file}: {exc.strerror}") from None

    @classmethod
    def coerce(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "secrets must not be written in the config in clear; use {env: VAR_NAME} "
                "or {file: /path/to/mounted/secret}"
            )
        return value


Secret = Annotated[SecretRef, BeforeValidator(SecretRef.coerce)]
