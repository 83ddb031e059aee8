"""A loaded config checked against what is installed: plugins, their parameters, the signal catalog.

The schema (``AiopsConfig``) catches unknown keys in aiops's own sections; it cannot know which
parameters a plugin takes or which signals exist, so a typo there would pass it and then do
nothing at all: ``ladder.prepare_action: evacuate_nodee`` never loads, ``params: {stratgy: x}``
silently falls back to the default, a rule whose ``signal`` names nothing never fires. Each check
here returns ``(config key, reason)`` pairs that name the exact key, the form ``check-config``
prints and the daemon refuses to start with.
"""

from __future__ import annotations

from collections.abc import Mapping
from difflib import get_close_matches
from fnmatch import fnmatchcase
from typing import Any

from aiops import plugins
from aiops.config import AiopsConfig
from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.config.policy import PolicyRule
from aiops.plugins import PluginError

# Findings built from Alertmanager webhooks carry the alert's name as their signal, so a rule
# that is only about them may name any signal. Kept here as a literal (it is part of the config
# language), checked against aiops.notify.alertmanager.INBOUND_DETECTOR by the tests.
INBOUND_DETECTOR = "alertmanager"
# Signals that aiops derives itself rather than collects (root-cause correlation).
ENGINE_SIGNALS = ("gpu_metrics_missing",)
# Findings the engine makes itself (aiops.engine.correlate.DETECTOR; checked by the tests). The
# absent-signal finding is not here: policy never acts on missing data.
ENGINE_DETECTORS = ("root_cause",)


def check_plugins(config: AiopsConfig) -> list[tuple[str, str]]:
    """Every plugin the config names must load and accept its parameters; every rule's signal
    and detector must name one, every ``safety.action_modes`` key an installed remediation.
    Returns (config key, problem) pairs, empty when all is well."""
    problems = _check_detectors(config)
    signals, detectors = known_signals(config), known_detectors(config)
    for i, rule in enumerate(config.policy.rules):
        problems += check_rule(rule, f"policy.rules[{i}]", signals, detectors)
    for code, action in config.policy.xid_remediation.items():
        _remediation(action, f"policy.xid_remediation.{code}", problems)
    problems += _check_action_modes(config)
    for name, ch in config.notify.channels.items():
        try:
            plugins.load(plugins.NOTIFIERS, ch.plugin)
        except PluginError as exc:
            problems.append((f"notify.channels.{name}.plugin", str(exc)))
    return problems


def _check_action_modes(config: AiopsConfig) -> list[tuple[str, str]]:
    """A cap is looked up by the decision's action name: under a misspelt key it never applies."""
    installed = sorted(plugins.available(plugins.REMEDIATIONS))
    problems: list[tuple[str, str]] = []
    for name in config.safety.action_modes:
        if name in installed:
            continue
        close = get_close_matches(name, installed, n=1)
        likely = f"did you mean {close[0]!r}? " if close else ""
        problems.append((
            f"safety.action_modes.{name}",
            f"{name!r} is no installed remediation, so this cap would never apply; {likely}"
            f"installed: {', '.join(installed) or 'none'}",
        ))
    return problems


def _check_detectors(config: AiopsConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for i, d in enumerate(config.detectors):
        try:
            cls = plugins.load(plugins.DETECTORS, d.plugin)
        except PluginError as exc:
            problems.append((f"detectors[{i}].plugin", str(exc)))
            continue
        if isinstance(cls, type) and issubclass(cls, plugins.Detector):
            declared = cls.params_problems(d.params)
            problems += [(_key(f"detectors[{i}].params", where), msg) for where, msg in declared]
            if declared:
                continue
        # Construct it too: a constructor checks what one parameter cannot say (hold <= horizon).
        params = dict(d.params)
        if d.signals is not None:
            params["signals"] = d.signals
        try:
            plugins.instantiate(plugins.DETECTORS, d.plugin, params)
        except PluginError as exc:
            problems.append((f"detectors[{i}].params", str(exc)))
    return problems


def known_signals(config: AiopsConfig) -> set[str]:
    """Every signal a finding may carry: the catalog (disabled ones too: naming them is no typo),
    the config's own signals, what detectors and the engine derive."""
    names = {*DEFAULT_SIGNALS, *config.signals, *ENGINE_SIGNALS}
    for name in plugins.available(plugins.DETECTORS):
        try:
            cls = plugins.load(plugins.DETECTORS, name)
        except PluginError:
            continue  # reported against the detector that names it
        names.update(getattr(cls, "derived_signals", ()))
    return names


def known_detectors(config: AiopsConfig) -> set[str]:
    """Every name a finding's ``detector`` may carry: installed detectors (by entry point and by
    the name their findings carry), the config's instance names, the webhook and the engine."""
    names = {*plugins.available(plugins.DETECTORS), *(d.instance_name for d in config.detectors)}
    for name in plugins.available(plugins.DETECTORS):
        try:
            cls = plugins.load(plugins.DETECTORS, name)
        except PluginError:
            continue  # reported against the detector that names it
        names.add(str(getattr(cls, "name", "") or name))
    return {*names, INBOUND_DETECTOR, *ENGINE_DETECTORS}


def check_rule(
    rule: PolicyRule, key: str, known_signals: set[str], known_detectors: set[str]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not any(fnmatchcase(d, rule.detector) for d in known_detectors):
        problems.append((
            f"{key}.detector",
            f"{rule.detector!r} matches no detector; known: {', '.join(sorted(known_detectors))}",
        ))
    inbound_only = rule.detector != "*" and fnmatchcase(INBOUND_DETECTOR, rule.detector)
    if not inbound_only and not any(fnmatchcase(s, rule.signal) for s in known_signals):
        problems.append((
            f"{key}.signal",
            f"{rule.signal!r} matches no known signal: check the spelling against the catalog "
            "(aiops/config/catalog.py) or define it under `signals:`; for an Alertmanager alert "
            f"name set `detector: {INBOUND_DETECTOR}`",
        ))
    action = _remediation(rule.action, f"{key}.action", problems)
    if action is not None:
        problems += check_params(action, rule.params, f"{key}.params")
    if rule.ladder is not None:
        prepare = action
        if rule.ladder.prepare_action is not None:
            prepare = _remediation(rule.ladder.prepare_action, f"{key}.ladder.prepare_action", problems)
        if prepare is not None:
            problems += check_params(prepare, rule.ladder.prepare_params, f"{key}.ladder.prepare_params")
    return problems


def _remediation(name: str, key: str, problems: list[tuple[str, str]]) -> type[plugins.Remediation] | None:
    try:
        cls = plugins.load(plugins.REMEDIATIONS, name)
    except PluginError as exc:
        problems.append((key, str(exc)))
        return None
    return cls if isinstance(cls, type) and issubclass(cls, plugins.Remediation) else None


def check_params(cls: type[plugins.Remediation], params: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """Validate a rule's parameters against the remediation's declared ``Params`` model."""
    return [(_key(key, where), msg) for where, msg in plugins.check_params(cls.Params, params, cls.name)]


def _key(key: str, where: str) -> str:
    return f"{key}.{where}" if where else key
