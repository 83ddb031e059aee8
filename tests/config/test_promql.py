"""Matchers on every series selector: the shard matcher and prometheus.scope."""

from __future__ import annotations

import re

import promql_parser
import pytest

from aiops.config.promql import RewriteError, add_matchers, any_of, regex_literal, scoped


def _selectors(query: str) -> list[dict[str, str]]:
    """Each vector selector's equality matchers (and its name), walking the parsed query."""
    found: list[dict[str, str]] = []

    def post(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            own = {m.name: m.value for m in node.matchers.matchers}
            found.append({**own, **({"__name__": node.name} if node.name else {})})
        return None

    promql_parser.transform(promql_parser.parse(query), post_visit=post)
    return found


@pytest.mark.parametrize("query", [
    "max by (pod) (container_memory_working_set_bytes{container!=\"\"})",
    "sum by (model_name) (rate(vllm:request_success_total[5m]))",
    "max_over_time(x[1h:5m]) / on (instance) group_left (nodename) topk by (instance) (1, node_uname_info)",
    'label_replace(up{job="a"}, "node", "$1", "instance", "(.+?)(?::[0-9]+)?") or vector(0) * absent(y offset 5m)',
    'histogram_quantile(0.99, sum by (le) (rate(h_bucket{path=~"/api/v\\\\d+", q="say \\"hi\\""}[5m])))',
])
def test_every_selector_gets_the_scope_and_nothing_else_changes(query: str) -> None:
    out = scoped(query, {"cluster": "prod-eu", "env": "prod"})
    assert all(s.get("cluster") == "prod-eu" and s.get("env") == "prod" for s in _selectors(out))
    # The same expression otherwise: take the scope off each selector and the selectors match.
    strip = [{k: v for k, v in s.items() if k not in ("cluster", "env")} for s in _selectors(out)]
    assert strip == _selectors(query)
    assert '"$1"' not in query or '"$1"' in out  # string arguments untouched


def test_no_scope_is_the_query_itself() -> None:
    assert scoped("up", {}) == "up"


def test_values_are_quoted_exactly() -> None:
    out = scoped("up", {"cluster": 'we"ird\\name'})
    assert _selectors(out) == [{"__name__": "up", "cluster": 'we"ird\\name'}]


@pytest.mark.parametrize(("query", "why"), [
    ('up{a="1" or b="2"}', "'or' matchers"),
    ("up @ 1700000000", "pinned with @"),
    ("vector(1)", "no series selector"),
    ("max by (", "does not parse"),
])
def test_a_query_that_cannot_carry_matchers_says_why(query: str, why: str) -> None:
    with pytest.raises(RewriteError, match=why):
        add_matchers(query, [("cluster", "=", "x")])


def test_regex_literals_match_the_values_and_nothing_else() -> None:
    assert regex_literal("a.b*(c)") == r"a\.b\*\(c\)"
    pattern = any_of(["10.0.3.7:9100", "a|b", "10.0.3.7:9100"])
    assert pattern == r"10\.0\.3\.7:9100|a\|b"  # each once, sorted: one query text for one set
    assert all(re.fullmatch(pattern, v) for v in ("10.0.3.7:9100", "a|b"))
    assert not any(re.fullmatch(pattern, v) for v in ("10x0x3x7:9100", "10.0.3.70:9100", "a", "b", ""))
