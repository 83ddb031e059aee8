"""Fetch only the series of the shards a replica holds.

PromQL has no hash function: no query can ask for "the series whose node hashes to shard 2 of 3".
What a query can do is match a label against a set of values (``node=~"a|b|c"``, which
Prometheus answers from its index as a set lookup). So a sharded replica, for each signal:

1. **discovers** the values of the signal's *shard label* (the label its series' shard is hashed
   from: the node for nodes and what runs on them, else the entity's name) with
   ``/api/v1/label/<label>/values`` and the query's own selectors as ``match[]``: an index
   lookup that reads no samples, and a superset of what the query can return;
2. **hashes** each value to its shard with :func:`shard_key`/:func:`shard_hash`, the very
   function the rest of the daemon uses to decide who owns an entity;
3. **fetches**, for each shard it holds, the signal's query with ``<label>=~"<its values>"`` added
   to every selector (the values are split over several requests when the matcher gets long,
   and sent as POST bodies).

That rewrite is exact only when the label flows unchanged from every selector to the result: an
aggregation grouped by it, a join matched on it. :meth:`ShardQuery.build` checks this on the
parsed query and declines otherwise (``sum(x)``, ``x and on (job) y``, ``label_replace`` into
the label, ``absent``, ``scalar``): such a signal is fetched whole by every replica, as before,
and the frame filter of :mod:`aiops.engine.shards` keeps the replica's own series. The fetch is a
*superset* of what a replica owns (series without the label fall back to other keys, so every
replica fetches them; a pod name shared by two namespaces is fetched with both); the frame filter
keeps ownership exact.

Cost: one extra label-values request per signal per cycle, and each held shard's query carries
its values. Prometheus evaluates each replica's query over that replica's series only.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from aiops.config.catalog import DEFAULT_SIGNALS
from aiops.config.promql import RewriteError, add_matchers, any_of, promql_string
from aiops.config.signals import SignalConfig
from aiops.errors import PermanentError
from aiops.model import Entity, EntityKind

log = logging.getLogger(__name__)

# Entity attributes that name the node an entity runs on (pods: kube-state-metrics' ``node``;
# GPUs: dcgm-exporter's ``Hostname``). An entity that has one belongs to its node's shard.
NODE_ATTRIBUTES = ("node", "Hostname")

# A matcher value that stands in for the shard's values until a request is made.
_PLACEHOLDER = "__aiops_shard_values__"
# Functions whose result does not follow their input series one for one: filtering the input by
# the shard label would change (or not filter) the answer.
_NOT_SHARDABLE_CALLS = frozenset({"absent", "absent_over_time", "scalar", "vector", "info", "count_values"})
_RELABELLING_CALLS = frozenset({"label_replace", "label_join"})


def shard_key(entity: Entity) -> str:
    """What decides an entity's shard: one label value, so a query can select a shard's series.

    Its node when it has one (so a node, its pods and its GPUs land together and a root cause on
    a node meets its symptoms), else its kind and name. The namespace is left out on purpose: two
    namespaces' pods of one name share a shard, and the fetch needs one matcher per signal.
    """
    if entity.kind == EntityKind.NODE:
        return f"node/{entity.name}"
    for attr in NODE_ATTRIBUTES:
        node = entity.attr(attr)
        if node:
            return f"node/{node}"
    return f"{entity.kind}/{entity.name}"


def shard_hash(key: str, shards: int) -> int:
    """A stable shard number in [0, shards): the same on every replica, Python version and run."""
    if shards <= 1:
        return 0
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass(frozen=True)
class HeldShards:
    """The shards a replica holds, out of ``shards``: what the collector fetches. The signals in
    ``whole`` are fetched whole all the same (aiops.engine.shards.SHARED_SIGNALS)."""

    shards: int
    held: frozenset[int]
    whole: frozenset[str] = frozenset()


class NotShardable(PermanentError, ValueError):
    """The query's result is not filtered exactly by a matcher on the label (the reason says why)."""


@dataclass(frozen=True)
class ShardQuery:
    """A signal's query, ready to be asked for the series of some values of its shard label."""

    label: str
    prefix: str  # shard_key of a series = prefix + its label value
    template: str  # the query with the placeholder matcher on every selector
    selectors: tuple[str, ...]  # match[] for the label-values discovery
    margin_seconds: float  # how far back of the fetched range a selector reaches (ranges, offsets)

    @classmethod
    def build(cls, signal: SignalConfig) -> ShardQuery:
        """Raise :class:`NotShardable` when the query cannot be split by its shard label."""
        label, prefix = shard_label(signal)
        template, selectors, margin = _rewrite(signal.query, label)
        return cls(label, prefix, template, selectors, margin)

    def shard_of(self, value: str, shards: int) -> int:
        return shard_hash(self.prefix + value, shards)

    def query(self, values: Iterable[str]) -> str:
        """The query for the series whose label is one of ``values``, or absent (fallback keys)."""
        pattern = any_of(["", *values])  # "": the series without the label
        return self.template.replace(promql_string(_PLACEHOLDER), promql_string(pattern))

    def queries(self, values: Sequence[str], max_bytes: int) -> Iterator[str]:
        """:meth:`query` over ``values`` split so no request's matcher is much over ``max_bytes``."""
        group: list[str] = []
        size = 0
        for v in sorted(values):
            if group and size + len(v) + 1 > max_bytes:
                yield self.query(group)
                group, size = [], 0
            group.append(v)
            size += len(v.encode()) + 1
        yield self.query(group)


def shard_label(signal: SignalConfig) -> tuple[str, str]:
    """The label whose value decides the shard of a series of ``signal``, and its key prefix.

    Mirrors :func:`shard_key` on the entity :func:`aiops.collect.collector.entity_of` builds.
    """
    name = signal.entity_labels.get("name")
    if signal.entity == "node":
        if not name:
            raise NotShardable("a node signal without a name label")
        return name, "node/"
    for attr in NODE_ATTRIBUTES:
        if attr in signal.attribute_labels:
            return attr, "node/"
    if not name:
        raise NotShardable("no name label")
    return name, f"{signal.entity}/"


def _rewrite(query: str, label: str) -> tuple[str, tuple[str, ...], float]:
    """(query with the placeholder matcher on every selector, the selectors, their reach back)."""
    import promql_parser as pp

    try:
        expr = pp.parse(query)
    except ValueError as exc:
        raise NotShardable(f"the query does not parse: {exc}") from None
    _check_label_flows(expr, label)
    try:
        done = add_matchers(query, [(label, "=~", _PLACEHOLDER)])
    except RewriteError as exc:
        raise NotShardable(str(exc)) from None
    return done.query, done.selectors, done.margin_seconds


def _check_label_flows(expr: object, label: str) -> None:
    """Raise :class:`NotShardable` unless filtering every selector by ``label`` filters the result
    by ``label`` and nothing else: every aggregation groups by it, every join matches on it."""
    import promql_parser as pp

    def vector_valued(node: object) -> bool:
        return not isinstance(node, (pp.NumberLiteral, pp.StringLiteral)) and not (
            isinstance(node, pp.Call) and node.func.return_type != pp.ValueType.Vector
            and node.func.return_type != pp.ValueType.Matrix
        ) and not (isinstance(node, (pp.ParenExpr, pp.UnaryExpr)) and not vector_valued(node.expr))

    def visit(node: object) -> None:
        if isinstance(node, (pp.VectorSelector, pp.MatrixSelector, pp.NumberLiteral, pp.StringLiteral)):
            return
        if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
            visit(node.expr)
            return
        if isinstance(node, pp.Call):
            name = node.func.name
            if name in _NOT_SHARDABLE_CALLS:
                raise NotShardable(f"{name}() does not keep its input series apart")
            if name in _RELABELLING_CALLS and len(node.args) > 1 and getattr(node.args[1], "val", None) == label:
                raise NotShardable(f"{name}() writes the shard label {label!r}")
            for arg in node.args:
                visit(arg)
            return
        if isinstance(node, pp.AggregateExpr):
            mod = node.modifier
            grouped = mod is not None and (
                (mod.type == pp.AggModifierType.By and label in mod.labels)
                or (mod.type == pp.AggModifierType.Without and label not in mod.labels)
            )
            if not grouped:
                raise NotShardable(f"{node.op} is not grouped by {label!r}")
            if node.param is not None and not isinstance(node.param, (pp.NumberLiteral, pp.StringLiteral)):
                visit(node.param)
            visit(node.expr)
            return
        if isinstance(node, pp.BinaryExpr):
            if vector_valued(node.lhs) and vector_valued(node.rhs):
                matching = node.modifier.matching if node.modifier is not None else None
                if matching is not None and (
                    (matching.type == pp.LabelModifierType.Include and label not in matching.labels)
                    or (matching.type == pp.LabelModifierType.Exclude and label in matching.labels)
                ):
                    raise NotShardable(f"a join that does not match on {label!r}")
            visit(node.lhs)
            visit(node.rhs)
            return
        raise NotShardable(f"{type(node).__name__} is not understood")

    visit(expr)


def shard_queries(signals: dict[str, SignalConfig], written: Collection[str] = ()) -> dict[str, ShardQuery]:
    """The signals that can be fetched per shard; the others are fetched whole (logged once).
    ``written``: the signals the config defines or overrides (the others are the catalog's own)."""
    out: dict[str, ShardQuery] = {}
    for name, signal in signals.items():
        try:
            out[name] = ShardQuery.build(signal)
        except NotShardable as exc:
            # Expected of the catalog's own node-exporter signals (named by a join, docs/scaling.md);
            # worth a warning for a signal someone wrote.
            level = logging.INFO if name in DEFAULT_SIGNALS and name not in written else logging.WARNING
            log.log(
                level,
                "signal fetched whole by every replica: its query cannot be split by shard",
                extra={"signal": name, "reason": str(exc)},
            )
    return out
