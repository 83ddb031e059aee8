"""Cross-signal root cause for AI serving: join quality and serving findings with infrastructure.

Topology comes from the series themselves: pod -> node from ``kube_pod_info`` (signal
``pod_info``), GPU -> node from dcgm-exporter's ``Hostname``, model -> replica pods from the
per-replica quality gauge and vLLM's per-pod series. Then:

- a quality drop on *some* replicas of a model, whose nodes show GPU trouble, is a node problem:
  a ``root_cause`` finding targets the node (so policy evacuates it) and the quality findings get
  ``cause`` = that node (so policy does not roll the model back). When *all* replicas drop, it is
  the model: nothing is attributed and the model-level finding stands.
- a latency regression of a model whose pods run on a node with GPU findings is attributed to it.
- an OOMKill next to a GPU framebuffer trend on the same node is linked in the evidence.
- GPU series that vanish while their node is Ready are reported: missing data is a signal too.
- a pod crash-looping (restarting, OOM-killed) on a node whose GPU failed is a symptom of the
  node: it gets ``cause`` = the node, so policy restarts nothing and the node's evacuation moves it.

Pure: findings + frame in, findings out. Thresholds come from ``policy.root_cause``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

import numpy as np

from aiops.config.policy import RootCauseConfig
from aiops.model import Entity, EntityKind, Evidence, Finding, Frame, Series, from_epoch

DETECTOR = "root_cause"
# A GPU that stopped reporting while its node is Ready: nothing is measured on it any more.
GPU_METRICS_MISSING = "gpu_metrics_missing"
# Not a measurement: dcgm-exporter exports the last XID until it restarts, for a GPU off the bus too.
_HELD = frozenset({"gpu_xid"})


def _node_of_gpu(entity: Entity) -> str:
    return entity.attr("Hostname").split(":")[0]


def _drop_since(series: Series, min_drop: float) -> tuple[float, datetime | None]:
    """Relative drop of the latest values against the series' own early baseline, and since when."""
    values = series.values
    ok = np.isfinite(values)
    if ok.sum() < 10:
        return 0.0, None
    vals, ts = values[ok], series.timestamps[ok]
    third = max(3, len(vals) // 3)
    baseline = float(np.median(vals[:third]))
    if baseline <= 0:
        return 0.0, None
    recent = float(np.median(vals[-max(3, len(vals) // 20):]))
    drop = 1.0 - recent / baseline
    if drop < min_drop:
        return drop, None
    below = vals < baseline * (1.0 - min_drop / 2)
    # The start of the last run of points below the half-way mark.
    idx = len(below) - 1
    while idx > 0 and below[idx - 1]:
        idx -= 1
    return drop, from_epoch(ts[idx])


def correlate(findings: Sequence[Finding], frame: Frame, config: RootCauseConfig) -> list[Finding]:
    if not config.enabled:
        return list(findings)
    out = list(findings)

    # Infrastructure trouble per node: GPU findings (by Hostname) and node findings.
    infra: dict[str, list[Finding]] = {}
    for f in findings:
        if f.score < config.infra_min_score or f.cause is not None:
            continue
        if f.entity.kind == EntityKind.GPU and _node_of_gpu(f.entity):
            infra.setdefault(_node_of_gpu(f.entity), []).append(f)
        elif f.entity.kind == EntityKind.NODE and f.signal in ("node_ready",):
            infra.setdefault(f.entity.name, []).append(f)

    # Missing series: a GPU that stopped reporting while its node is Ready. Not a series of a
    # sparse signal (gpu_pods: a pod left the GPU, or the exporter's pod was renamed by its
    # rollout), nor one of a GPU that still measures anything (under other labels, or a GPU
    # switched into MIG mode, which reports no whole-GPU utilisation): each warned for the 6 hours
    # it stayed in the lookback, the GPU reporting all along. Off the bus, utilisation, memory,
    # temperature and power end together.
    vanished_gpus = _unmeasured_gpus(frame)
    ready = _node_readiness(frame) if vanished_gpus else {}
    gone: dict[str, Series] = {}
    for s in vanished_gpus:
        if ready.get(_node_of_gpu(s.entity)) == 1.0:
            gone.setdefault(s.entity.key, s)
    for s in gone.values():
        node = _node_of_gpu(s.entity)
        out.append(Finding(
            detector=DETECTOR,
            signal=GPU_METRICS_MISSING,
            entity=s.entity,
            score=config.missing_gpu_score,
            observed_at=frame.now,
            evidence=Evidence(
                f"GPU {s.entity.name} on node {node} stopped reporting {s.signal} at "
                f"{from_epoch(s.timestamps[-1]):%H:%M UTC} while the node is Ready "
                "(dcgm-exporter down, or the GPU fell off the bus)",
                recent=tuple(float(v) for v in s.values[-24:]),
                facts={"node": node, "last_seen": from_epoch(s.timestamps[-1]).isoformat()},
                related=(f"node/{node}",),
            ),
        ))

    # Nodes with a GPU failure that has happened (not a risk): a confirmed GPU finding, or a GPU
    # that stopped reporting while the node is Ready.
    dead = {n for n, fs in infra.items() if any(f.entity.kind == EntityKind.GPU and f.confirmed for f in fs)}
    dead |= {_node_of_gpu(s.entity) for s in gone.values()}
    # Pod -> node is a pass over every series: read only when a step below can use it (each
    # returns its findings unchanged without GPU trouble or a framebuffer finding).
    framebuffer = any(f.signal == "gpu_memory_usage_ratio" and f.entity.kind == EntityKind.GPU for f in findings)
    pod_node = _pod_nodes(frame) if dead or infra or framebuffer else {}
    out = _symptoms_on_dead_gpus(out, dead, pod_node)
    out = _quality_by_replica(out, frame, infra, pod_node, config)
    out = _latency_on_sick_nodes(out, frame, infra, pod_node)
    return _oom_next_to_framebuffer(out, pod_node)


def _unmeasured_gpus(frame: Frame) -> list[Series]:
    """Ended series of GPUs that measure nothing now (see :func:`correlate`)."""
    ended = [
        s for s in frame.vanished
        if s.entity.kind == EntityKind.GPU and not (s.signal in frame.signals and frame.signals[s.signal].sparse)
    ]
    measuring = {
        s.entity.key for name, info in (frame.signals.items() if ended else ())
        if info.entity_kind == EntityKind.GPU and not info.sparse and name not in _HELD
        for s in frame.of(name)
    }
    return [s for s in ended if s.entity.key not in measuring]


def _node_readiness(frame: Frame) -> dict[str, float]:
    return {s.entity.name: float(s.values[-1]) for s in frame.of("node_ready") if len(s)}


def unseen_entities(
    findings: Sequence[Finding], skipped: Mapping[str, str] | None = None, *, frame: Frame | None = None,
) -> dict[str, str]:
    """Entities whose health is unknown this cycle, by key, with what says so: a GPU that stopped
    reporting, a GPU on a node that is not Ready (a reboot takes its exporter down), and those a
    detector skipped (``skipped``: one of their series raised). A finding about one that is gone is
    gone for want of data, not healed (an XID 79 takes the GPU off the bus and its series with it).
    The one place the act stage, the prediction ledger and the notify stage ask."""
    unseen = dict(skipped or {})
    gpus = _unmeasured_gpus(frame) if frame is not None else []
    ready = _node_readiness(frame) if frame is not None and gpus else {}
    for s in gpus:
        node = _node_of_gpu(s.entity)
        if node in ready and ready[node] != 1.0:
            unseen.setdefault(s.entity.key, f"node {node} is not Ready: GPU {s.entity.name} not measured since "
                                            f"{from_epoch(s.timestamps[-1]):%H:%M UTC}")
    unseen.update({f.entity.key: f.evidence.summary for f in findings
                   if f.detector == DETECTOR and f.signal == GPU_METRICS_MISSING})
    return unseen


def _pod_nodes(frame: Frame) -> dict[str, str]:
    out = {}
    for s in frame.of("pod_info"):
        node = s.entity.attr("node")
        if node:
            out[s.entity.key] = node
    return out


# Pod failures that a dead GPU explains: restarting the pod cannot heal them.
POD_SYMPTOMS = frozenset({"pod_crashlooping", "pod_restarts", "pod_oom_killed"})


def _symptoms_on_dead_gpus(findings: list[Finding], dead: set[str], pod_node: dict[str, str]) -> list[Finding]:
    """A pod crash-looping on a node whose GPU failed is a symptom: the node is the cause (its
    evacuation moves the pod to a healthy GPU), so no action goes to the pod itself."""
    if not dead:
        return findings
    out = []
    for f in findings:
        node = pod_node.get(f.entity.key) if f.entity.kind == EntityKind.POD else None
        if node in dead and f.signal in POD_SYMPTOMS and f.cause is None and f.detector != DETECTOR:
            f = replace(f, cause=Entity(kind=EntityKind.NODE, name=node), evidence=replace(
                f.evidence, summary=f"{f.evidence.summary} — on node {node}, whose GPU failed: the node is the cause",
                related=(*f.evidence.related, f"node/{node}")))
        out.append(f)
    return out


def _quality_by_replica(
    findings: list[Finding], frame: Frame, infra: dict[str, list[Finding]], pod_node: dict[str, str],
    config: RootCauseConfig,
) -> list[Finding]:
    if not infra:
        return findings  # a replica's drop is attributed only to a node with trouble
    replicas: dict[tuple[str, str], list[Series]] = {}
    for s in frame.of("model_replica_accuracy"):
        replicas.setdefault((s.entity.namespace, s.entity.attr("model")), []).append(s)
    causes: dict[tuple[str, str], Entity] = {}
    for (namespace, model), series in replicas.items():
        if len(series) < 2:
            continue
        if not any(pod_node.get(s.entity.key, s.entity.attr("node")) in infra for s in series):
            continue  # the node it could be attributed to is one of its replicas', and none has trouble
        drops = {s.entity.key: _drop_since(s, config.replica_quality_drop) for s in series}
        bad = [s for s in series if drops[s.entity.key][1] is not None]
        if not bad or len(bad) == len(series):
            continue  # nobody or everybody: not a node's fault
        nodes = {pod_node.get(s.entity.key, s.entity.attr("node")) for s in bad}
        if len(nodes) != 1 or None in nodes or "" in nodes:
            continue
        node = nodes.pop()
        trouble = infra.get(node)
        if not trouble:
            continue
        worst = max(trouble, key=lambda f: f.score)
        r = bad[0]
        drop, since = drops[r.entity.key]
        fine = ", ".join(sorted(s.entity.name for s in series if s not in bad))
        summary = (
            f"accuracy on replica {r.entity.name} of {model} dropped {drop:.0%} since {since:%H:%M UTC}; "
            f"it runs on node {node}, whose {worst.entity.kind} {worst.entity.name} reports: {worst.evidence.summary.rstrip('. ')}; "
            f"the other replicas ({fine}) are fine — the node is the cause, not the model"
        )
        node_entity = Entity(kind=EntityKind.NODE, name=node)
        findings.append(Finding(
            detector=DETECTOR,
            signal=worst.signal,
            entity=node_entity,
            score=max(worst.score, 0.9),
            observed_at=frame.now,
            confirmed=worst.confirmed,
            predicted_failure_at=worst.predicted_failure_at,
            evidence=Evidence(summary, recent=tuple(float(v) for v in r.values[-24:]),
                              facts={"model": model, "replica": r.entity.name, "drop": round(drop, 4),
                                     "since": since.isoformat() if since else None, "gpu_finding": worst.key},
                              related=(r.entity.key, worst.entity.key)),
        ))
        causes[(namespace, model)] = node_entity
        for s in bad:
            causes[("pod", s.entity.key)] = node_entity
    if not causes:
        return findings
    out = []
    for f in findings:
        cause = causes.get((f.entity.namespace, f.entity.name)) if f.entity.kind == EntityKind.MODEL else None
        cause = cause or causes.get(("pod", f.entity.key))
        if cause is not None and f.detector != DETECTOR and f.signal in ("model_accuracy", "model_replica_accuracy", "business_conversion_rate"):
            f = replace(f, cause=cause, evidence=replace(f.evidence, summary=f"{f.evidence.summary} — attributed to {cause.key}"))
        out.append(f)
    return out


def _latency_on_sick_nodes(
    findings: list[Finding], frame: Frame, infra: dict[str, list[Finding]], pod_node: dict[str, str]
) -> list[Finding]:
    if not infra:
        return findings
    model_pods: dict[tuple[str, str], set[str]] = {}
    for s in frame.of("inference_kv_cache_usage"):
        model_pods.setdefault((s.entity.namespace, s.entity.attr("model_name")), set()).add(s.entity.key)
    out = []
    for f in findings:
        latency = f.signal.startswith("serving_") or f.signal == "inference_latency_p99"
        if latency and f.entity.kind == EntityKind.MODEL and f.cause is None:
            pods = model_pods.get((f.entity.namespace, f.entity.name), set())
            nodes = {pod_node[p] for p in pods if p in pod_node}
            sick = sorted(n for n in nodes if n in infra)
            if sick and len(sick) < len(nodes):
                node = sick[0]
                worst = max(infra[node], key=lambda x: x.score)
                f = replace(f, cause=Entity(kind=EntityKind.NODE, name=node), evidence=replace(
                    f.evidence,
                    summary=f"{f.evidence.summary} — follows {worst.entity.kind} {worst.entity.name} on node {node}: "
                            f"{worst.evidence.summary}",
                    related=(*f.evidence.related, worst.entity.key)))
        out.append(f)
    return out


def _oom_next_to_framebuffer(findings: list[Finding], pod_node: dict[str, str]) -> list[Finding]:
    fb_nodes = {
        _node_of_gpu(f.entity): f for f in findings
        if f.signal == "gpu_memory_usage_ratio" and f.entity.kind == EntityKind.GPU and _node_of_gpu(f.entity)
    }
    if not fb_nodes:
        return findings
    out = []
    for f in findings:
        if f.signal == "pod_oom_killed" and pod_node.get(f.entity.key) in fb_nodes:
            gpu = fb_nodes[pod_node[f.entity.key]]
            f = replace(f, evidence=replace(
                f.evidence, summary=f"{f.evidence.summary} — follows a framebuffer trend on GPU {gpu.entity.name}",
                related=(*f.evidence.related, gpu.entity.key)))
        out.append(f)
    return out
