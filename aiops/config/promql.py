"""Matchers added to every series selector of a PromQL query, on the parsed query.

Two things need it: a sharded replica asks for its shards' series only (``<label>=~"<values>"``,
:mod:`aiops.collect.shard_query`), and ``prometheus.scope`` keeps every query on one cluster of a
backend that serves several (``cluster="prod-eu"`` behind Thanos, Mimir or VictoriaMetrics: a query
without it would mix the clusters' pods of the same name, and act on this cluster for a pod of
another). Both are what prom-label-proxy does on the server: a matcher on *every* selector, so
no part of the expression reads another cluster's (or shard's) series.

The query is parsed (promql-parser) and printed back; a text edit could not tell a selector from
a string or a label list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from aiops.errors import PermanentError

# A label name as Prometheus accepts it (the scope's keys).
LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
# RE2 metacharacters: a value is matched literally.
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


class RewriteError(PermanentError, ValueError):
    """The query cannot carry the matchers (the message says why): fix the query."""


def promql_string(value: str) -> str:
    """A double-quoted PromQL string literal (Go's escapes are a superset of JSON's)."""
    return json.dumps(value, ensure_ascii=False)


def regex_literal(value: str) -> str:
    """``value`` as an RE2 pattern that matches it and nothing else (Prometheus anchors the pattern)."""
    return "".join("\\" + c if c in _RE2_SPECIAL else c for c in value)


def any_of(values: Iterable[str]) -> str:
    """An RE2 pattern matching exactly these values, in a fixed order (one query text for one set)."""
    return "|".join(regex_literal(v) for v in sorted(set(values)))


def matcher_op(op: object) -> str:
    import promql_parser as pp

    for known, text in ((pp.MatchOp.Equal, "="), (pp.MatchOp.NotEqual, "!="), (pp.MatchOp.Re, "=~"), (pp.MatchOp.NotRe, "!~")):
        if op == known:
            return text
    raise RewriteError(f"an unknown matcher operator {op!r}")


@dataclass(frozen=True)
class Rewritten:
    query: str  # with the matchers on every selector
    selectors: tuple[str, ...]  # each selector as it was (``{__name__="x", ...}``), for match[]
    margin_seconds: float  # how far back of the evaluated range a selector reaches (ranges, offsets)


def add_matchers(query: str, matchers: Sequence[tuple[str, str, str]]) -> Rewritten:
    """``query`` with each (label, op, value) matcher on every series selector.

    Raise :class:`RewriteError` for a query that does not parse, has no selector, or has a
    selector with ``or`` matchers (each alternative would need them) or pinned with ``@``.
    """
    import promql_parser as pp

    try:
        expr = pp.parse(query)
    except ValueError as exc:
        raise RewriteError(f"the query does not parse: {exc}") from None
    ops = {"=": pp.MatchOp.Equal, "!=": pp.MatchOp.NotEqual, "=~": pp.MatchOp.Re, "!~": pp.MatchOp.NotRe}
    selectors: list[str] = []
    literals: list[str] = []
    margin = 0.0

    def quoted(value: str) -> str:
        # The parser's printer does not escape quotes or backslashes: print every string through
        # a placeholder of ours, replaced by a correctly quoted literal afterwards.
        literals.append(value)
        return f"__aiops_literal_{len(literals) - 1}__"

    def post(node: pp.Expr) -> pp.Expr | None:
        nonlocal margin
        if isinstance(node, pp.MatrixSelector):
            margin = max(margin, node.range.total_seconds())
            return None
        if isinstance(node, pp.SubqueryExpr):
            margin = max(margin, (node.range.total_seconds() if node.range else 0.0))
            return None
        if isinstance(node, pp.StringLiteral):
            return pp.parse(f'"{quoted(node.val)}"')
        if not isinstance(node, pp.VectorSelector):
            return None
        if node.matchers.or_matchers:
            raise RewriteError("a selector with 'or' matchers")
        if node.at is not None:
            raise RewriteError("a selector pinned with @")
        if node.offset is not None:
            margin = max(margin, abs(node.offset.total_seconds()))
        own = [(m.name, matcher_op(m.op), m.value) for m in node.matchers.matchers]
        if node.name:
            own.insert(0, ("__name__", "=", node.name))
        selectors.append("{" + ", ".join(f"{n}{op}{promql_string(v)}" for n, op, v in own) + "}")
        added = [pp.Matcher(m.op, m.name, quoted(m.value)) for m in node.matchers.matchers]
        added += [pp.Matcher(ops[op], name, quoted(value)) for name, op, value in matchers]
        node.matchers = pp.Matchers(added)
        return pp.parse(str(node))

    try:
        rendered = str(pp.transform(expr, post_visit=post))
    except ValueError as exc:
        if isinstance(exc, RewriteError):
            raise
        raise RewriteError(f"the query could not be rewritten: {exc}") from None
    for i, value in enumerate(literals):
        rendered = rendered.replace(f'"__aiops_literal_{i}__"', promql_string(value))
    # What we send must parse, and say what the original said plus our matchers.
    try:
        pp.parse(rendered)
    except ValueError as exc:  # pragma: no cover - a printer bug we did not foresee
        raise RewriteError(f"the rewritten query does not parse: {exc}") from None
    if not selectors:
        raise RewriteError("no series selector")
    return Rewritten(rendered, tuple(dict.fromkeys(selectors)), margin)


def scoped(query: str, scope: Mapping[str, str]) -> str:
    """``query`` with ``label="value"`` for each of ``scope`` on every selector (module docstring)."""
    if not scope:
        return query
    return add_matchers(query, [(k, "=", v) for k, v in sorted(scope.items())]).query
