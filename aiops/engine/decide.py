"""The decide stage: findings -> graded findings and decisions, from policy in config.

All thresholds live here (via config), never in detectors. A finding is graded by score and by
how soon its predicted failure is; the first matching rule turns it into a decision on a target.
Several findings about one target collapse into one decision, carrying the strongest finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from fnmatch import fnmatchcase

from aiops.config.policy import PolicyConfig, PolicyRule
from aiops.model import Decision, Entity, Finding, Mode, Severity

# Attributes that name the node an entity runs on, in order of preference.
NODE_ATTRIBUTES = ("node", "Hostname", "instance", "kubernetes_node")


class Policy:
    def __init__(self, config: PolicyConfig, mode: Mode) -> None:
        self.config = config
        self.mode = mode

    def grade(self, finding: Finding) -> Finding:
        t = self.config.severity
        if finding.score >= t.critical:
            severity = Severity.CRITICAL
        elif finding.score >= t.warning:
            severity = Severity.WARNING
        else:
            severity = Severity.INFO
        lead = finding.lead_time
        if severity is Severity.WARNING and (finding.confirmed or (lead is not None and lead <= t.critical_lead_time)):
            # An imminent or already-observed failure outranks its raw score.
            severity = Severity.CRITICAL
        return replace(finding, severity=severity)

    def matches(self, rule: PolicyRule, finding: Finding) -> bool:
        if not (
            fnmatchcase(finding.detector, rule.detector)
            and fnmatchcase(finding.signal, rule.signal)
            and fnmatchcase(finding.entity.kind, rule.entity_kind)
        ):
            return False
        severity = finding.severity or Severity.INFO
        if severity.rank < rule.min_severity.rank:
            return False
        if rule.require_confirmed and not finding.confirmed:
            return False
        if rule.max_lead_time is not None and not finding.confirmed:
            lead = finding.lead_time
            if lead is None or lead > rule.max_lead_time or lead < -timedelta(minutes=5):
                return False
        return True

    def target(self, rule: PolicyRule, finding: Finding) -> tuple[Entity, dict[str, str]]:
        entity = finding.entity
        if rule.target == "node" and entity.kind != "node":
            for attr in NODE_ATTRIBUTES:
                node = entity.attr(attr)
                if node:
                    return Entity(kind="node", name=node.split(":")[0]), {}
            # The act stage resolves it from cluster state (pod -> spec.nodeName).
            return entity, {"resolve_target": "node"}
        if rule.target == "owner":
            return entity, {"resolve_target": "owner"}
        return entity, {}

    def decide(self, findings: Sequence[Finding]) -> tuple[list[Finding], list[Decision]]:
        graded = [self.grade(f) for f in findings]
        best: dict[tuple[str, str], Decision] = {}
        for finding in sorted(graded, key=lambda f: (-f.score, f.key)):
            rule = next((r for r in self.config.rules if self.matches(r, finding)), None)
            if rule is None:
                continue
            target, extra = self.target(rule, finding)
            key = (rule.action, target.key)
            if key in best:
                continue  # a stronger finding already asked for this action on this target
            mode = self.mode if self.mode.rank <= rule.max_mode.rank else rule.max_mode
            best[key] = Decision(
                action=rule.action,
                target=target,
                mode=mode,
                reason=_reason(rule, finding),
                finding=finding,
                rule=rule.name,
                params={**rule.params, **extra},
            )
        return graded, list(best.values())


def _reason(rule: PolicyRule, finding: Finding) -> str:
    what = "confirmed" if finding.confirmed else f"score {finding.score:.2f}"
    lead = finding.lead_time
    when = f", predicted failure in {_human(lead)}" if lead is not None else ""
    return f"rule {rule.name}: {finding.detector} on {finding.signal} ({what}{when}): {finding.evidence.summary}"


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "the past"
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"
