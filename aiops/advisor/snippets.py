"""The exact change each recommendation proposes, as manifest/values snippets and kubectl commands.

Snippets are built as data and dumped with PyYAML, so they are valid YAML a user can paste into a
strategic-merge patch (``kubectl patch --type strategic --patch-file``) or a Helm values file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from aiops.model import Entity, EntityKind


def _yaml(data: Mapping[str, Any], *comments: str) -> str:
    head = "".join(f"# {c}\n" for c in comments)
    body: str = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)
    return head + body.rstrip() + "\n"


def _pod_spec_patch(pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": dict(pod_spec)}}}


def _owner(entity: Entity) -> str:
    if entity.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
        return f"{entity.kind}/{entity.name} in namespace {entity.namespace}"
    return f"the owner of pods {entity.name}-* in namespace {entity.namespace}"


def remove_gpu_change(entity: Entity) -> str:
    # In a strategic-merge patch, null deletes the key; containers merge by name.
    patch = _pod_spec_patch(
        {
            "containers": [
                {"name": "<container>", "resources": {"limits": {"nvidia.com/gpu": None}, "requests": {"nvidia.com/gpu": None}}}
            ]
        }
    )
    return _yaml(
        patch,
        f"Strategic-merge patch for {_owner(entity)}: drop the GPU so it schedules on CPU nodes.",
        "Also drop GPU nodeSelector/tolerations, and give it CPU/memory requests sized from its usage.",
    )


def release_gpu_change(entity: Entity, dormant: bool) -> str:
    sharing = {
        "version": "v1",
        "sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}},
    }
    if dormant and entity.kind in (EntityKind.DEPLOYMENT, EntityKind.STATEFULSET):
        release = _yaml({"spec": {"replicas": 0}}, f"Release the GPU: scale {_owner(entity)} to zero (or delete it).")
    else:
        release = (
            f"# Release the GPU when idle: scale {_owner(entity)} to zero outside its busy hours\n"
            "# (KEDA ScaledObject with minReplicaCount: 0, or a scheduled scale).\n"
        )
    return release + _yaml(
        sharing,
        "Or, if it must stay up, share the GPU: NVIDIA device-plugin time-slicing config",
        "(the ConfigMap named by the GPU operator's devicePlugin.config), or follow the MIG advice.",
    )


def node_selector_change(entity: Entity, selector: Mapping[str, str], class_name: str) -> tuple[str, str]:
    patch = _pod_spec_patch({"nodeSelector": dict(selector)})
    snippet = _yaml(patch, f"Strategic-merge patch for {_owner(entity)}: schedule it on {class_name} nodes.")
    return snippet, _patch_command(entity, patch)


def mig_change(entity: Entity, profile: str) -> str:
    patch = _pod_spec_patch(
        {
            "containers": [
                {
                    "name": "<container>",
                    "resources": {"limits": {"nvidia.com/gpu": None, f"nvidia.com/mig-{profile}": 1}},
                }
            ]
        }
    )
    return (
        "# 1. Partition a GPU node with the GPU operator's MIG manager (mixed strategy):\n"
        f"#    kubectl label node <node> nvidia.com/mig.config=all-{profile} --overwrite\n"
        + _yaml(patch, f"2. Strategic-merge patch for {_owner(entity)}: request one {profile} slice instead of a GPU.")
    )


def hpa_target_change(hpa: Entity, metric: str, target: float) -> tuple[str, str]:
    spec = {
        "spec": {
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": metric},
                        "target": {"type": "AverageValue", "averageValue": f"{target:g}"},
                    },
                }
            ]
        }
    }
    snippet = _yaml(
        spec,
        f"HorizontalPodAutoscaler {hpa.namespace}/{hpa.name}: scale out at {target:g} % GPU utilisation.",
        f"The pods metric {metric} must be served by prometheus-adapter (custom.metrics.k8s.io).",
    )
    return snippet, _patch_command(hpa, spec, resource="hpa")


def hpa_scale_down_change(hpa: Entity, stabilization_seconds: int, target: float) -> tuple[str, str]:
    spec = {
        "spec": {
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": stabilization_seconds,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}],
                    "selectPolicy": "Max",
                }
            }
        }
    }
    snippet = _yaml(
        spec,
        f"HorizontalPodAutoscaler {hpa.namespace}/{hpa.name}: release replicas quickly once load drops.",
        f"With a {target:g} % target, replicas go as soon as the lower count has held for "
        f"{stabilization_seconds // 60} min; all surplus may go at once.",
    )
    return snippet, _patch_command(hpa, spec, resource="hpa")


def prescale_change(
    hpa: Entity, windows: list[tuple[tuple[str, str], tuple[str, str]]], peak_replicas: int, base_replicas: int
) -> str:
    """``windows``: ((label, cron) before the peak, (label, cron) after it) per peak."""
    lines = [
        f"# Raise the floor of {hpa.namespace}/{hpa.name} before each peak and lower it after: the",
        "# scale_ahead remediation, or CronJobs (schedule in UTC) running kubectl with a ServiceAccount",
        "# allowed to patch HPAs.",
    ]
    up = json.dumps({"spec": {"minReplicas": peak_replicas}})
    down = json.dumps({"spec": {"minReplicas": base_replicas}})
    for (begin, begin_cron), (end, end_cron) in windows:
        lines.append(f"# at {begin} UTC (cron: {begin_cron})")
        lines.append(f"kubectl -n {hpa.namespace} patch hpa {hpa.name} --type merge -p '{up}'")
        lines.append(f"# at {end} UTC (cron: {end_cron})")
        lines.append(f"kubectl -n {hpa.namespace} patch hpa {hpa.name} --type merge -p '{down}'")
    return "\n".join(lines) + "\n"


def _patch_command(entity: Entity, patch: Mapping[str, Any], resource: str | None = None) -> str:
    kind = resource or entity.kind
    body = json.dumps(patch, separators=(",", ":"))
    # An HPA's lists have no merge keys; a merge patch states plainly that they are replaced.
    how = "merge" if kind == "hpa" else "strategic"
    return f"kubectl -n {entity.namespace} patch {kind} {entity.name} --type {how} -p '{body}'"
