"""Bearer-token authentication and RBAC authorisation, as the apiserver's RBAC authorizer does it.

The service account's rules come from a ClusterRole manifest (``deploy/rbac/clusterrole.yaml``) and
a Role manifest (``deploy/rbac/role.yaml``, whose rules hold in its namespace only), so a test fails
with 403 exactly when the shipped roles lack a verb the code uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class PolicyRule:
    """One ``rbac.authorization.k8s.io/v1`` PolicyRule (resource rules only)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    # A Role's rule holds in its namespace only; "" (a ClusterRole's) holds everywhere.
    namespace: str = ""

    @classmethod
    def from_dict(cls, rule: Mapping[str, Any], namespace: str = "") -> PolicyRule:
        return cls(
            api_groups=tuple(rule.get("apiGroups") or ()),
            resources=tuple(rule.get("resources") or ()),
            verbs=tuple(rule.get("verbs") or ()),
            resource_names=tuple(rule.get("resourceNames") or ()),
            namespace=namespace,
        )

    def allows(self, verb: str, group: str, resource: str, subresource: str, name: str, namespace: str = "") -> bool:
        full = f"{resource}/{subresource}" if subresource else resource
        return (
            (not self.namespace or namespace == self.namespace)
            and
            ("*" in self.verbs or verb in self.verbs)
            and ("*" in self.api_groups or group in self.api_groups)
            and (
                "*" in self.resources
                or full in self.resources
                or (not subresource and f"{resource}/*" in self.resources)
                or (bool(subresource) and f"*/{subresource}" in self.resources)
            )
            and (not self.resource_names or name in self.resource_names)
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


@dataclass(frozen=True)
class Identity:
    """Who a bearer token authenticates as. ``rules`` None means unrestricted (system:masters)."""

    username: str
    groups: tuple[str, ...] = ("system:authenticated",)
    rules: tuple[PolicyRule, ...] | None = field(default=None)

    def can(
        self, verb: str, group: str, resource: str, subresource: str = "", name: str = "", namespace: str = ""
    ) -> bool:
        if self.rules is None:
            return True
        return any(r.allows(verb, group, resource, subresource, name, namespace) for r in self.rules)


def rules_from(rules: Iterable[Mapping[str, Any] | PolicyRule]) -> tuple[PolicyRule, ...]:
    return tuple(r if isinstance(r, PolicyRule) else PolicyRule.from_dict(r) for r in rules)


def load_cluster_role(path: str | Path, name: str | None = None) -> tuple[PolicyRule, ...]:
    """The rules of the (named, or only) ClusterRole in a manifest file, which may hold several documents."""
    path = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]
    except OSError as exc:
        raise FileNotFoundError(
            f"cannot read the ClusterRole manifest {path}: {exc.strerror}; pass rules= explicitly"
        ) from None
    roles = [
        d
        for d in docs
        if d.get("kind") == "ClusterRole" and (name is None or d.get("metadata", {}).get("name") == name)
    ]
    if len(roles) != 1:
        raise ValueError(
            f"{path}: expected exactly one ClusterRole{f' named {name!r}' if name else ''}, found {len(roles)}"
        )
    return rules_from(roles[0].get("rules") or ())


def load_roles(path: str | Path) -> tuple[PolicyRule, ...]:
    """The rules of every Role in a manifest file, each bound to its Role's namespace."""
    docs = [d for d in yaml.safe_load_all(Path(path).read_text(encoding="utf-8")) if isinstance(d, dict)]
    return tuple(
        PolicyRule.from_dict(rule, namespace=str((d.get("metadata") or {}).get("namespace") or "default"))
        for d in docs if d.get("kind") == "Role"
        for rule in d.get("rules") or ()
    )


def forbidden_message(
    user: str, verb: str, group: str, resource: str, subresource: str, namespace: str, name: str, qualified: str
) -> str:
    """The apiserver's wording, e.g. ``pods "p" is forbidden: User "u" cannot delete resource "pods" in API group "" in the namespace "ns"``."""
    full = f"{resource}/{subresource}" if subresource else resource
    subject = f'{qualified} "{name}"' if name else qualified
    where = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return f'{subject} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}" {where}'


def rules_review(identity: Identity, namespace: str = "") -> Sequence[dict[str, Any]]:
    """``SelfSubjectRulesReview`` status.resourceRules for ``kubectl auth can-i --list`` (in ``namespace``)."""
    if identity.rules is None:
        return [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    return [r.to_dict() for r in identity.rules if not r.namespace or r.namespace == namespace]
