"""The one YAML config, validated at start.

``load_config(path)`` returns a frozen :class:`AiopsConfig` or raises :class:`ConfigError` whose
message names each offending key (``prometheus.timeout: expected a duration ...``). Secrets are
referenced (``{env: NAME}`` / ``{file: PATH}``) and resolved by :func:`resolve_secret`; their
values never appear in errors or logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from aiops.config.advisor import AdvisorConfig
from aiops.config.base import Duration, Secret, SecretRef, StrictModel, parse_duration
from aiops.config.catalog import DEFAULT_SIGNALS, eviction_signals
from aiops.config.detect import DetectorConfig, default_detectors
from aiops.config.kube import KubernetesConfig
from aiops.config.kubelet import KubeletConfig
from aiops.config.notify import NotifyConfig
from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.config.prometheus import PrometheusConfig
from aiops.config.promql import RewriteError, scoped
from aiops.config.safety import SHARD_SPLIT_BUDGETS, SafetyConfig
from aiops.config.server import ServerConfig
from aiops.config.sharding import ShardingConfig
from aiops.config.signals import SignalConfig, SignalOverride
from aiops.errors import PermanentError
from aiops.logs import register_secret

__all__ = [
    "AiopsConfig",
    "ConfigError",
    "DetectorConfig",
    "Duration",
    "PolicyRule",
    "Secret",
    "SecretRef",
    "SignalConfig",
    "load_config",
    "parse_config",
    "parse_duration",
    "resolve_secret",
]


class ConfigError(PermanentError):
    """The config is invalid. ``problems`` holds (key path, reason) pairs."""

    hint = "fix the keys named, then run `aiops check-config FILE`"

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {key or '(top level)'}: {reason}" for key, reason in problems)
        super().__init__(f"invalid config {source}:\n{lines}")


class ScheduleConfig(StrictModel):
    interval: Duration = timedelta(seconds=60)
    # A run that starts later than this after its due time is skipped (and coalesced).
    misfire_grace: Duration = timedelta(seconds=30)

    @field_validator("interval")
    @classmethod
    def _at_least_a_second(cls, interval: timedelta) -> timedelta:
        if interval < timedelta(seconds=1):
            raise ValueError("interval must be at least 1s (0 would run cycles back to back)")
        return interval


class StateConfig(StrictModel):
    path: Path = Path(".aiops/state.sqlite")
    # Audit rows and closed predictions older than this are pruned so the database stays bounded
    # (detector precision and lead times are measured over it).
    audit_retention: Duration = timedelta(days=30)
    # Detector state (multivariate references, daily maxima) not saved again for this long is of a
    # series or pool that is gone, and is pruned. Live ones are saved at least daily (a reference
    # refreshed less often than this is refitted from the lookback after a restart).
    detector_state_retention: Duration = timedelta(days=15)
    # The database never grows past this (SQLite's max_page_count): the oldest audit rows are
    # pruned first to stay under it, and a write that would cross it fails as "disk full" would.
    # The default leaves room for the WAL on the chart's 1 GiB emptyDir.
    max_bytes: int = Field(default=768 * 2**20, ge=2**20)


class LoggingConfig(StrictModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class AiopsConfig(StrictModel):
    prometheus: PrometheusConfig = PrometheusConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    # Overrides of the catalog's signals, and new signals (which must give query and entity).
    signals: dict[str, SignalOverride | SignalConfig] = Field(default_factory=dict)
    detectors: list[DetectorConfig] = Field(default_factory=default_detectors)
    policy: PolicyConfig = PolicyConfig()
    safety: SafetyConfig = SafetyConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()
    sharding: ShardingConfig = ShardingConfig()
    notify: NotifyConfig = NotifyConfig()
    server: ServerConfig = ServerConfig()
    state: StateConfig = StateConfig()
    logging: LoggingConfig = LoggingConfig()
    advisor: AdvisorConfig = AdvisorConfig()
    # The nodes' eviction thresholds: where the node signals fail (aiops/config/kubelet.py).
    kubelet: KubeletConfig = KubeletConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> AiopsConfig:
        names = [d.instance_name for d in self.detectors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"detector instance names must be unique (set 'name'), repeated: {', '.join(dupes)}")
        resolved = self.resolved_signals()
        for name, signal in resolved.items():
            try:
                signal.plausible()
            except ValueError as exc:
                raise ValueError(f"signals.{name}.{exc}") from None
        known = set(resolved)
        for det in self.detectors:
            for sig in det.signals or ():
                if sig not in known:
                    raise ValueError(f"detector {det.instance_name!r} uses unknown signal {sig!r}")
        if self.sharding.shards > 1 and not (self.kubernetes.enabled and self.kubernetes.leader_election.enabled):
            raise ValueError(
                "sharding.shards > 1 needs kubernetes.enabled and kubernetes.leader_election.enabled "
                "(each shard is a Lease); set shards: 1 to run one daemon for the whole cluster"
            )
        self._check_budget_split()
        return self

    def _check_budget_split(self) -> None:
        """Each shard spends only its share of every split budget (floor(B / N), one more for the
        first B mod N shards), so N shards keep to B together. A budget B with 0 < B < N gives
        some shards none: their entities would never be acted on though nothing was spent."""
        n = self.sharding.shards
        if n <= 1:
            return
        small = [(k, getattr(self.safety, k)) for k in SHARD_SPLIT_BUDGETS if 0 < getattr(self.safety, k) < n]
        if not small:
            return
        named = ", ".join(f"safety.{k} ({b})" for k, b in small)
        fewest = min(b for _, b in small)
        raise ValueError(
            f"sharding.shards ({n}) is more than {named}: each budget is split over the shards and "
            f"cannot be split into {n} parts of at least 1, so some shards could never act. "
            + ("Set sharding.shards to 1 (no sharding)" if fewest == 1 else f"Set sharding.shards to at most {fewest}")
            + f", or raise each of these budgets to at least {n} (the budgets stay global: all "
            "shards together spend at most the budget), or set one to 0 to turn that kind of action off"
        )

    def resolved_signals(self) -> dict[str, SignalConfig]:
        """The catalog merged with the user's overrides, without disabled signals."""
        merged: dict[str, SignalConfig] = dict(DEFAULT_SIGNALS)
        if self.kubelet.eviction_hard or self.kubelet.eviction_soft:
            merged.update(eviction_signals(self.kubelet))
        for name, override in self.signals.items():
            if isinstance(override, SignalConfig):
                merged[name] = override
                continue
            base = merged.get(name)
            patch = override.model_dump(exclude_none=True)
            if base is None:
                missing = [k for k in ("query", "entity") if k not in patch]
                if missing:
                    raise ValueError(f"signal {name!r} is not in the catalog, so it needs {' and '.join(missing)}")
                merged[name] = SignalConfig(**patch)
            else:
                merged[name] = base.model_copy(update=patch)
        enabled = {n: s for n, s in merged.items() if s.enabled}
        scope = self.prometheus.scope
        if not scope:
            return enabled
        out: dict[str, SignalConfig] = {}
        for n, s in enabled.items():
            try:
                out[n] = s.model_copy(update={"query": scoped(s.query, scope)})
            except RewriteError as exc:
                raise ValueError(f"signals.{n}: prometheus.scope cannot be added to its query: {exc}") from None
        return out


def _loc(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item) in {"SignalOverride", "SignalConfig"} or str(item).startswith("function-"):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        key = _loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the example config in README.md)"
        seen.setdefault(key, msg)
    return list(seen.items())


def parse_config(data: Mapping[str, Any] | None, source: str = "<config>") -> AiopsConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, [("", f"expected a mapping of sections, got {type(data).__name__}")])
    try:
        return AiopsConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc)) from None


def load_config(path: str | Path | None) -> AiopsConfig:
    """Load and validate a YAML config; ``None`` gives the built-in defaults."""
    if path is None:
        return parse_config({}, "<defaults>")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), [("", f"not valid YAML{where}: {getattr(exc, 'problem', exc)}")]) from None
    except ValueError:  # PyYAML's int() of a number past Python's 4300-digit limit
        raise ConfigError(str(path), [("", "a number in it has over 4300 digits, more than any setting takes: "
                                           "look for a value pasted by mistake")]) from None
    return parse_config(data, str(path))


def resolve_secret(ref: SecretRef | None, key: str) -> SecretStr | None:
    """Resolve a secret reference, naming the config key (never the value) on failure."""
    if ref is None:
        return None
    try:
        value = ref.resolve()
    except ValueError as exc:
        raise ConfigError("<secrets>", [(key, str(exc))]) from None
    register_secret(value.get_secret_value())  # masked in every log line from now on
    return value
