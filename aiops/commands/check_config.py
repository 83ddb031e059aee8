"""``aiops check-config FILE``: validate a config, its secrets and its plugins; non-zero on error."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from aiops.commands._common import EXIT_OK, EXIT_USAGE, load_or_explain
from aiops.config import AiopsConfig, ConfigError, resolve_secret
from aiops.config.base import SecretRef
from aiops.config.check import check_plugins
from aiops.config.signals import SignalConfig
from aiops.model import EntityKind
from aiops.text import listed


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("check-config", help="validate a config file and exit non-zero with the key and reason on error")
    p.add_argument("file", metavar="FILE")
    p.add_argument(
        "--prometheus", action="store_true",
        help="also run every signal's query once against the configured Prometheus and report errors "
        "(and node signals naming nodes that are not Kubernetes nodes)",
    )
    p.set_defaults(func=run)


def _secret_refs(model: object, prefix: str = "") -> list[tuple[str, SecretRef]]:
    from pydantic import BaseModel

    out: list[tuple[str, SecretRef]] = []
    if isinstance(model, SecretRef):
        return [(prefix, model)]
    if isinstance(model, BaseModel):
        for name in type(model).model_fields:
            out += _secret_refs(getattr(model, name), f"{prefix}.{name}" if prefix else name)
    elif isinstance(model, dict):
        for k, v in model.items():
            out += _secret_refs(v, f"{prefix}.{k}")
    elif isinstance(model, list | tuple):
        for i, v in enumerate(model):
            out += _secret_refs(v, f"{prefix}[{i}]")
    return out


def check(config: AiopsConfig) -> list[tuple[str, str]]:
    from aiops.notify.channels import check_channels

    problems = check_plugins(config)
    problems += check_channels(config.notify)
    for key, ref in _secret_refs(config):
        try:
            resolve_secret(ref, key)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def check_queries(config: AiopsConfig, at: float | None = None) -> list[tuple[str, str]]:
    """Evaluate each signal's query once (now, or at epoch second ``at``), so a typo in PromQL fails
    here and not at 3 a.m.; then check that what they answer can be acted on."""
    from aiops.collect.prometheus import PrometheusClient, PrometheusError

    client = PrometheusClient(config.prometheus)
    problems: list[tuple[str, str]] = []
    answers: dict[str, list[dict[str, str]]] = {}
    when = None if at is None else datetime.fromtimestamp(at, UTC)
    signals = config.resolved_signals()
    try:
        for name, signal in signals.items():
            try:
                answers[name] = [dict(s.labels) for s in client.query(signal.query, when)]
            except PrometheusError as exc:
                problems.append((f"signals.{name}.query", str(exc)))
                if exc.temporary:
                    break  # Prometheus itself is unreachable: one message is enough
    finally:
        client.close()
    scope = config.prometheus.scope
    if scope and not problems and not any(answers.values()):
        wanted = ", ".join(f'{k}="{v}"' for k, v in sorted(scope.items()))
        problems.append(("prometheus.scope", (
            f"no signal has a series with {wanted}: the daemon would see nothing. Check the label and its "
            f"value, e.g. count by ({', '.join(sorted(scope))}) (up)")))
    return problems + _unknown_nodes(signals, answers)


def _unknown_nodes(signals: dict[str, SignalConfig], answers: dict[str, list[dict[str, str]]]) -> list[tuple[str, str]]:
    """Signals whose nodes kube-state-metrics does not know (node_ready). Nothing done to such a
    node would reach a Kubernetes node: a node-exporter scraped at its address without
    node_uname_info is named by its IP; a dcgm-exporter without NODE_NAME names its own pod."""
    known = {labels.get("node") for labels in answers.get("node_ready", [])} - {None}
    if not known:
        return []
    found: dict[str, tuple[list[str], set[str]]] = {}  # one problem per cause: signals, the nodes named
    for name, signal in signals.items():
        if name == "node_ready":
            continue
        if signal.entity == EntityKind.NODE and signal.entity_labels.get("name"):
            label = signal.entity_labels["name"]
            why = ("node-exporter's instance is its scrape address and node_uname_info does not name its node: "
                   "enable the uname collector, or relabel instance to the node's name (docs/deploy.md)")
        elif "Hostname" in signal.attribute_labels:
            label = "Hostname"
            why = ("dcgm-exporter's Hostname is its NODE_NAME environment variable, else its own host name: "
                   "set NODE_NAME from spec.nodeName in its DaemonSet (docs/deploy.md)")
        else:
            continue
        unknown = {labels[label] for labels in answers.get(name, []) if labels.get(label)} - known
        if unknown:
            names, nodes = found.setdefault(why, ([], set()))
            names.append(name)
            nodes |= unknown
    out = []
    for why, (names, nodes) in found.items():
        also = f" (and {len(names) - 1} more of its signals)" if len(names) > 1 else ""
        out.append((f"signals.{names[0]}", f"names nodes that are not Kubernetes nodes (kube_node_*){also}: {listed(sorted(nodes))}. {why}"))
    return out


def run(args: argparse.Namespace) -> int:
    config = load_or_explain(args.file)
    if config is None:
        return EXIT_USAGE
    problems = check(config)
    if not problems and args.prometheus:
        problems = check_queries(config)
    if problems:
        print(f"error: invalid config {args.file}:", file=sys.stderr)
        for key, reason in problems:
            print(f"  {key}: {reason}", file=sys.stderr)
        return EXIT_USAGE
    signals = config.resolved_signals()
    print(
        f"{args.file}: ok — {len(signals)} signals, {sum(d.enabled for d in config.detectors)} detectors, "
        f"{len(config.policy.rules)} policy rules, mode {config.safety.mode.value}"
        f"{' (dry-run)' if config.safety.dry_run else ''}"
    )
    return EXIT_OK
