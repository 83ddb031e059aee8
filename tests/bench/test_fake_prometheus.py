"""bench/fake_prometheus.py answers as Prometheus does, checked against a real Prometheus.

The memory benchmarks at 100k series run the daemon against the fake, so its answers must have
what the daemon's decoding, windows and entities depend on: the JSON shape, the evaluation
instants (``start + k * step``), the label names each catalog query keeps, the way values are
written, POST as well as GET, label values, instant queries, errors. Values themselves differ (the
fake's cluster is its own), so they are compared by form, not by number.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import requests

from aiops.collect.combine import LEG_LABEL, combined_query
from aiops.collect.shard_query import ShardQuery
from aiops.config import parse_config
from aiops.demo.prometheus import PrometheusServer
from aiops.demo.synth import Scenario, write_openmetrics
from bench.fake_prometheus import FakeCluster, go_float_text, serve

END = datetime(2026, 1, 5, tzinfo=UTC)
STEP = 60
SIGNALS = parse_config({}).resolved_signals()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(real Prometheus with an hour of a small synthetic cluster, the fake) base URLs."""
    root = tmp_path_factory.mktemp("prom-vs-fake")
    write_openmetrics(Scenario(duration=timedelta(hours=1), end=END), root / "history.om")
    with PrometheusServer(root / "data", openmetrics=root / "history.om") as prom, serve(FakeCluster(300)) as fake:
        yield prom.url, fake


def ask(url: str, path: str, params: dict[str, Any] | list[tuple[str, Any]], method: str = "GET") -> tuple[int, Any]:
    if method == "POST":
        resp = requests.post(url + path, data=params, timeout=30)
    else:
        resp = requests.get(url + path, params=params, timeout=30)
    return resp.status_code, resp.json()


def range_params(query: str) -> dict[str, Any]:
    # An instant off the step grid: Prometheus evaluates at start + k * step, not on a grid of its own.
    return {"query": query, "start": END.timestamp() - 1800 + 7, "end": END.timestamp(), "step": STEP}


@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_range_answers_have_prometheus_shape_instants_and_labels(servers: tuple[str, str], signal: str) -> None:
    real_url, fake_url = servers
    params = range_params(SIGNALS[signal].query)
    (real_code, real), (fake_code, fake) = ask(real_url, "/api/v1/query_range", params), ask(fake_url, "/api/v1/query_range", params)
    assert real_code == fake_code == 200
    assert set(fake) == set(real) and set(fake["data"]) == set(real["data"])
    assert fake["status"] == real["status"] == "success"
    assert fake["data"]["resultType"] == real["data"]["resultType"] == "matrix"
    grid = {params["start"] + k * STEP for k in range(31)}
    for answer in (real, fake):
        for item in answer["data"]["result"]:
            assert set(item) == {"metric", "values"}
            assert all(isinstance(v, str) for v in item["metric"].values())
            assert all(isinstance(t, int | float) and isinstance(v, str) for t, v in item["values"])
            assert {t for t, _ in item["values"]} <= grid
    real_series, fake_series = real["data"]["result"], fake["data"]["result"]
    if real_series and fake_series:  # kube-state-metrics exports some series only for the pods concerned
        assert {k for s in fake_series for k in s["metric"]} == {k for s in real_series for k in s["metric"]}


def test_values_are_written_as_prometheus_writes_them(servers: tuple[str, str]) -> None:
    real_url, _ = servers
    written: set[str] = set()
    for signal in SIGNALS.values():
        _, real = ask(real_url, "/api/v1/query_range", range_params(signal.query))
        written.update(v for s in real["data"]["result"] for _, v in s["values"])
    written.update(["NaN", "+Inf", "-Inf", "0.0000001", "100000000000000000000"])  # Go's 'f' format never uses exponents
    assert len(written) > 100
    texts = sorted(written)
    assert list(go_float_text(np.array([float(t) for t in texts]))) == texts


def test_post_is_answered_as_get(servers: tuple[str, str]) -> None:
    for url in servers:
        params = range_params(SIGNALS["pod_info"].query)
        assert ask(url, "/api/v1/query_range", params, "POST") == ask(url, "/api/v1/query_range", params)


def test_label_values_instant_queries_and_errors_have_prometheus_shape(servers: tuple[str, str]) -> None:
    answers = []
    for url in servers:
        values = ask(url, "/api/v1/label/node/values", [("match[]", "kube_pod_info"), ("start", END.timestamp() - 600),
                                                       ("end", END.timestamp())])
        instant = ask(url, "/api/v1/query", {"query": SIGNALS["node_ready"].query, "time": END.timestamp()})
        bad = ask(url, "/api/v1/query_range", range_params("max by (node) ("))
        answers.append((values, instant, bad))
    (real_values, real_instant, real_bad), (fake_values, fake_instant, fake_bad) = answers
    assert real_values[0] == fake_values[0] == 200 and set(real_values[1]) == set(fake_values[1]) == {"status", "data"}
    for body in (real_values[1], fake_values[1]):
        assert body["data"] and body["data"] == sorted(body["data"]) and all(isinstance(v, str) for v in body["data"])
    assert real_instant[0] == fake_instant[0] == 200
    assert real_instant[1]["data"]["resultType"] == fake_instant[1]["data"]["resultType"] == "vector"
    for body in (real_instant[1], fake_instant[1]):
        for item in body["data"]["result"]:
            assert set(item) == {"metric", "value"} and item["value"] == [END.timestamp(), "1"]
    assert real_bad[0] == fake_bad[0] == 400
    assert set(real_bad[1]) >= set(fake_bad[1]) >= {"status", "errorType", "error"}
    assert real_bad[1]["errorType"] == fake_bad[1]["errorType"] == "bad_data"


def test_a_shard_matcher_selects_the_same_series_as_in_prometheus(servers: tuple[str, str]) -> None:
    """A sharded replica's rewritten query: both answer exactly the series with those label values
    (plus those without the label), and the fake still recognises the catalog query under it."""
    shard = ShardQuery.build(SIGNALS["pod_info"])
    for url in servers:
        _, whole = ask(url, "/api/v1/query_range", range_params(SIGNALS["pod_info"].query))
        nodes = sorted({s["metric"][shard.label] for s in whole["data"]["result"]})
        assert len(nodes) >= 2
        _, part = ask(url, "/api/v1/query_range", range_params(shard.query(nodes[:1])))
        expected = [s for s in whole["data"]["result"] if s["metric"][shard.label] == nodes[0]]
        assert part["data"]["result"] and sorted(map(str, part["data"]["result"])) == sorted(map(str, expected))


def test_pods_are_replaced_and_sparse_series_stay_sparse() -> None:
    cluster = FakeCluster(3000, pod_lifetime_hours=1.0)
    day = END.timestamp()
    alive_then = {e.labels["pod"] for e in cluster.entities("pod_restarts", day - 7200, day - 7200)}
    alive_now = {e.labels["pod"] for e in cluster.entities("pod_restarts", day, day)}
    assert alive_then and alive_now and not alive_then & alive_now
    oom = cluster.entities("pod_oom_killed", day, day)
    assert 0 < len(oom) < 0.05 * len(alive_now)



def test_a_combined_query_is_answered_leg_by_leg(servers: tuple[str, str]) -> None:
    """The collector's steady cycle asks several signals in one query (aiops/collect/combine.py)."""
    real_url, fake_url = servers
    names = sorted(SIGNALS)
    params = range_params(combined_query([SIGNALS[n].query for n in names]))
    (real_code, real), (fake_code, fake) = (ask(real_url, "/api/v1/query_range", params, "POST"),
                                            ask(fake_url, "/api/v1/query_range", params, "POST"))
    assert real_code == fake_code == 200 and real["status"] == fake["status"] == "success"
    keys: list[dict[str, set[str]]] = []
    for answer in (real, fake):
        by_leg: dict[str, set[str]] = {}
        for item in answer["data"]["result"]:
            by_leg.setdefault(item["metric"][LEG_LABEL], set()).update(item["metric"])
        keys.append(by_leg)
    assert set(keys[1]) <= {str(k) for k in range(len(names))} and len(keys[1]) > len(names) // 2
    for leg in set(keys[0]) & set(keys[1]):
        assert keys[0][leg] == keys[1][leg], names[int(leg)]
