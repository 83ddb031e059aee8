"""A synthetic Prometheus for memory benchmarks past what promtool can backfill here.

Serves the part of Prometheus's HTTP API the daemon uses (``/api/v1/query_range``, GET or POST;
``/api/v1/label/<name>/values``; ``/api/v1/query``; ``/-/ready``) with Prometheus's exact JSON
shape (compact, ``[<unix seconds>,"<value>"]`` samples evaluated at ``start + k * step``, values
formatted as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` prints them, a gap left out), computed
on the fly from a seeded generator: nothing is stored, so a cluster of
100k series × 24 h costs this process no memory, and every request for the same (series, instant)
gets the same value.

What it answers is the *result* of each catalog signal's query: one series per entity, with the
labels the query keeps (``namespace``/``pod``/``container``; ``node``; ``Hostname``/``UUID``/...).
It does not evaluate PromQL: a query is recognised as one of the catalog's (a sharded replica's
query too: the ``<label>=~"..."`` matcher it adds is applied to the series; and the collector's
combined query, each of its legs answered so). Series that
kube-state-metrics exports only for some pods (a last termination by OOM, a CrashLoopBackOff wait)
exist only for a few pods here too; ``kube_pod_info`` is 1.
tests/bench/test_fake_prometheus.py compares its answers with a real Prometheus's. Pods are replaced now and
then (``--pod-lifetime-hours``): their series vanish and new ones appear, as in a real cluster.

What it measures and what it does not: the daemon's own memory and CPU for a cluster of that size
(decode, window, detectors, state) exactly as against Prometheus. Its answer times are this
process's, not a TSDB's: a "bare fetch" against it is the cost of this generator, not of
Prometheus, so cycle/bare ratios against it are not the issue's ratios (see bench/README.md).

    python bench/fake_prometheus.py --series 33000 --port 9091      # serve until interrupted
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlparse

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiops.collect.combine import LEG_LABEL  # noqa: E402 - after the path above

# Series per node of the synthetic cluster, by entity kind (a GPU node: 8 GPUs, ~10 pods).
GPUS_PER_NODE = 8
PODS_PER_NODE = 10
NODES_PER_MODEL = 5
MOUNTPOINTS = ("/", "/var/lib/containerd")
# Signals kube-state-metrics exports only for the pods concerned (about this share of them), at 1;
# pod_starting's query keeps only the pods on their way up (Pending, or not yet Ready), and
# pod_finished only the finished ones (a completed Job's pods).
SPARSE = {"pod_oom_killed": 0.02, "pod_crashlooping": 0.01, "pod_starting": 0.01, "pod_finished": 0.01}
# Info metrics: 1 for every series.
ONE = frozenset({"pod_info", "gpu_pods"})


@dataclass(frozen=True)
class Entity:
    labels: dict[str, str]
    seed: int
    born: float = -np.inf  # first instant the series exists (pods are replaced)
    dies: float = np.inf


def _canonical(query: str) -> str:
    """``query`` as the parser prints it, without the matcher a sharded replica adds (``=~"|..."``):
    the same text for a catalog query and for any replica's rewrite of it."""
    import promql_parser as pp

    def post(node: object) -> object | None:
        if not isinstance(node, pp.VectorSelector):
            return None
        kept = [m for m in node.matchers.matchers if not (m.op == pp.MatchOp.Re and m.value.startswith("|"))]
        if len(kept) == len(node.matchers.matchers):
            return None
        node.matchers = pp.Matchers(kept)
        return pp.parse(str(node))

    return str(pp.transform(pp.parse(query), post_visit=post))


def _metric_names(query: str) -> frozenset[str]:
    import promql_parser as pp

    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector) and node.name:
            names.add(node.name)

    pp.walk(pp.parse(query), pre_visit=visit)
    return frozenset(names)


class FakeCluster:
    """The signals of the default catalog over a synthetic GPU cluster of about ``series`` series."""

    def __init__(self, series: int, *, seed: int = 7, pod_lifetime_hours: float = 48.0) -> None:
        from aiops.config import parse_config

        self.signals = parse_config({}).resolved_signals()
        self.pod_lifetime = pod_lifetime_hours * 3600
        kinds = [s.entity for s in self.signals.values()]
        per_node = (
            sum(SPARSE.get(n, 1.0) for n, s in self.signals.items() if s.entity == "pod") * PODS_PER_NODE
            + kinds.count("gpu") * GPUS_PER_NODE
            + sum(len(MOUNTPOINTS) if "mountpoint" in s.attribute_labels else 1 for s in self.signals.values() if s.entity == "node")
            + kinds.count("model") / NODES_PER_MODEL
        )
        self.nodes = max(1, round(series / per_node))
        self.seed = seed
        self._by_names = {_metric_names(s.query): name for name, s in self.signals.items()}
        self._by_query = {_canonical(s.query): name for name, s in self.signals.items()}

    # -- which series a signal has ---------------------------------------------------------
    def entities(self, signal: str, lo: float, hi: float) -> list[Entity]:
        s = self.signals[signal]
        sig_seed = sum(map(ord, signal)) * 1_000_003 + self.seed
        name_label = s.entity_labels.get("name", "name")
        ns_label = s.entity_labels.get("namespace")
        out: list[Entity] = []
        if s.entity == "node":
            mounts = MOUNTPOINTS if "mountpoint" in s.attribute_labels else (None,)
            for n in range(self.nodes):
                for m in mounts:
                    labels = {name_label: f"gpu-node-{n:05d}"}
                    if m is not None:
                        labels["mountpoint"] = m
                    out.append(Entity(labels, sig_seed + n * 7 + len(out)))
        elif s.entity == "gpu":
            for n in range(self.nodes):
                for g in range(GPUS_PER_NODE):
                    labels = {"Hostname": f"gpu-node-{n:05d}", "gpu": str(g), "UUID": f"GPU-{n:05d}-{g}",
                              "modelName": "NVIDIA H100 80GB HBM3"}
                    if signal == "gpu_pods":  # dcgm-exporter's pod mapping: the pod on each GPU
                        labels.update(namespace=f"team-{(n + g) % 23}", pod=f"svc-gpu-{n:05d}-{g}")
                    out.append(Entity(labels, sig_seed + n * GPUS_PER_NODE + g))
        elif s.entity == "pod":
            for n in range(self.nodes):
                for p in range(PODS_PER_NODE):
                    k = n * PODS_PER_NODE + p
                    # Replaced every pod_lifetime, at a phase of its own: generations overlapping [lo, hi].
                    phase = (k * 7919) % max(1, int(self.pod_lifetime))
                    first, last = int((lo + phase) // self.pod_lifetime), int((hi + phase) // self.pod_lifetime)
                    for gen in range(first, last + 1):
                        if signal in SPARSE and (k * 7 + gen) % round(1 / SPARSE[signal]):
                            continue
                        labels = {name_label: f"svc-{k % 997}-{k:06d}-g{gen}"}
                        if ns_label:
                            labels[ns_label] = f"team-{k % 23}"
                        for a in s.attribute_labels:
                            labels[a] = {"node": f"gpu-node-{n:05d}", "container": "server",
                                         "created_by_kind": "ReplicaSet", "model_name": f"model-{k % 97}",
                                         "phase": "Succeeded"}.get(a, "x")
                        out.append(Entity(labels, sig_seed + k * 131 + gen,
                                          gen * self.pod_lifetime - phase, (gen + 1) * self.pod_lifetime - phase))
        else:  # models and the rest: a few per node
            for m in range(max(1, self.nodes // NODES_PER_MODEL)):
                labels = {name_label: f"model-{m:04d}"}
                if ns_label:
                    labels[ns_label] = f"serving-{m % 11}"
                out.append(Entity(labels, sig_seed + m))
        return out

    # -- values ------------------------------------------------------------------------------
    def values(self, signal: str, seeds: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """(series × instants) values: a daily cycle, a per-series level and hash noise, by unit."""
        s = self.signals[signal]
        level = (seeds * 0.6180339887) % 1.0
        daily = np.sin(2 * np.pi * (ts[None, :] / 86400.0) + level[:, None] * 6.283)
        noise = (np.sin(seeds[:, None] * 12.9898 + ts[None, :] * 78.233) * 43758.5453) % 1.0 - 0.5
        if s.unit == "bool":
            one = signal in ONE or signal in SPARSE or s.bad_direction == "down"
            return np.full((seeds.shape[0], ts.shape[0]), 1.0 if one else 0.0)
        if s.unit == "ratio":
            v = 0.2 + 0.4 * level[:, None] + 0.08 * daily + 0.02 * noise
        elif s.unit == "percent":
            v = 30 + 40 * level[:, None] + 15 * daily + 3 * noise
        elif s.unit == "seconds":
            v = 0.05 + 0.1 * level[:, None] + 0.02 * daily + 0.005 * noise
        elif s.unit in ("celsius", "watts"):
            v = (45 if s.unit == "celsius" else 300) * (1 + 0.2 * level[:, None] + 0.1 * daily + 0.02 * noise)
        elif s.unit in ("requests", "requests/s"):
            v = 5 + 20 * level[:, None] + 8 * daily + noise
        else:  # counts, codes, bitmasks: zero, as on a healthy cluster
            return np.zeros((seeds.shape[0], ts.shape[0]))
        return np.round(v, 4)

    # -- answers -----------------------------------------------------------------------------
    def signal_of(self, query: str) -> str:
        name = self._by_query.get(_canonical(query))
        if name is None:
            raise KeyError(f"not a catalog signal's query: {query[:200]!r}")
        return name

    def range_answer(self, query: str, start: float, end: float, step: float) -> bytes:
        legs = _legs(query)
        # The collector's combined query (aiops/collect/combine.py): each leg answered with its label.
        parts = [p for value, leg in legs for p in self._results(leg, start, end, step, value)] if legs else (
            self._results(query, start, end, step))
        return ('{"status":"success","data":{"resultType":"matrix","result":[' + ",".join(parts) + "]}}").encode()

    def _results(self, query: str, start: float, end: float, step: float, leg: str | None = None) -> list[str]:
        signal = self.signal_of(query)
        keep = _shard_filter(query)
        # Prometheus evaluates at start, start + step, ... up to end (not on a grid of its own).
        ts = start + step * np.arange(int(np.floor((end - start) / step + 1e-9)) + 1 if end >= start else 0)
        ents = [e for e in self.entities(signal, float(ts[0]) if ts.size else start, end) if keep(e.labels)]
        parts: list[str] = []
        if ts.size and ents:
            vals = self.values(signal, np.array([e.seed for e in ents], dtype=np.float64), ts)
            text = go_float_text(vals)
            tstr = [f"[{t:.0f}," if t == int(t) else f"[{t}," for t in ts.tolist()]
            for i, e in enumerate(ents):
                alive = (ts >= e.born) & (ts < e.dies)
                if not alive.any():
                    continue
                row = text[i]
                samples = ",".join(tstr[j] + '"' + row[j] + '"]' for j in np.flatnonzero(alive).tolist())
                labels = e.labels if leg is None else dict(sorted({**e.labels, LEG_LABEL: leg}.items()))
                parts.append('{"metric":' + json.dumps(labels, separators=(",", ":")) + ',"values":[' + samples + "]}")
        return parts

    def label_values(self, label: str, matches: list[str], start: float, end: float) -> bytes:
        values: set[str] = set()
        for match in matches:
            sel_names = _metric_names(match)
            for names, signal in self._by_names.items():
                if sel_names <= names:
                    values.update(e.labels[label] for e in self.entities(signal, start, end) if label in e.labels)
        return json.dumps({"status": "success", "data": sorted(values)}, separators=(",", ":")).encode()


def go_float_text(values: np.ndarray) -> np.ndarray:
    """Sample values as Prometheus writes them (Go's ``FormatFloat(v, 'f', -1, 64)``): the shortest
    decimal that reads back the same, never an exponent, no trailing ``.0``; NaN, +Inf, -Inf."""
    out = np.empty(values.shape, dtype=object)
    finite = np.isfinite(values)
    whole = finite & (values == np.round(values)) & (np.abs(values) < 2**53)
    out[whole] = values[whole].astype(np.int64).astype(str)
    rest = finite & ~whole
    shortest = values[rest].astype(str)  # Python's shortest repr: Go's digits, but with exponents
    exp = np.char.find(shortest, "e") >= 0
    text = shortest.astype(object)
    text[exp] = [np.format_float_positional(v, trim="-") for v in values[rest][exp].tolist()]
    out[rest] = text
    out[np.isnan(values)] = "NaN"
    out[values == np.inf] = "+Inf"
    out[values == -np.inf] = "-Inf"
    return out


def _legs(query: str) -> list[tuple[str, str]] | None:
    """A combined query's legs as (leg label value, the leg's own query); None for any other query."""
    import promql_parser as pp

    def leaves(node: Any) -> list[Any]:
        if isinstance(node, pp.BinaryExpr) and str(node.op) == "or":
            return leaves(node.lhs) + leaves(node.rhs)
        return [node]

    legs = []
    for node in leaves(pp.parse(query)):
        if not (isinstance(node, pp.Call) and node.func.name == "label_replace" and node.args[1].val == LEG_LABEL):
            return None
        legs.append((node.args[2].val, str(node.args[0])))
    return legs


def _shard_filter(query: str) -> Any:
    """A sharded replica's query carries ``label=~"v1|v2|..."`` on every selector: apply it."""
    import promql_parser as pp

    found: list[tuple[str, str]] = []

    def visit(node: object) -> None:
        if isinstance(node, pp.VectorSelector):
            for m in node.matchers.matchers:
                if m.op == pp.MatchOp.Re and m.value.startswith("|"):
                    found.append((m.name, m.value))

    pp.walk(pp.parse(query), pre_visit=visit)
    if not found:
        return lambda labels: True
    label, pattern = found[0]
    wanted = {re.sub(r"\\(.)", r"\1", v) for v in pattern.split("|")}
    return lambda labels: labels.get(label, "") in wanted


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeCluster

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _params(self) -> tuple[str, list[tuple[str, str]]]:
        url = urlparse(self.path)
        params = parse_qsl(url.query)
        if self.command == "POST":
            length = int(self.headers.get("Content-Length", "0"))
            params += parse_qsl(self.rfile.read(length).decode())
        return url.path, params

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path, params = self._params()
        one = dict(params)
        try:
            if path == "/-/ready":
                self._reply(200, b"Prometheus Server is Ready.\n")
            elif path in ("/api/v1/query_range", "/api/v1/query"):
                if path == "/api/v1/query":
                    t = float(one.get("time", "0"))
                    body = self.cluster.range_answer(one["query"], t, t, 60.0).replace(b'"matrix"', b'"vector"')
                    body = re.sub(rb'"values":\[\[([^\]]*)\]\]', rb'"value":[\1]', body)
                else:
                    body = self.cluster.range_answer(one["query"], float(one["start"]), float(one["end"]), float(one["step"]))
                self._reply(200, body)
            elif path.startswith("/api/v1/label/") and path.endswith("/values"):
                label = path[len("/api/v1/label/") : -len("/values")]
                matches = [v for k, v in params if k == "match[]"]
                self._reply(200, self.cluster.label_values(label, matches, float(one.get("start", 0)), float(one.get("end", 0))))
            else:
                self._reply(404, b'{"status":"error","errorType":"not_found","error":"not served by the fake"}')
        except (KeyError, ValueError) as exc:
            self._reply(400, json.dumps({"status": "error", "errorType": "bad_data", "error": str(exc)}).encode())

    do_POST = do_GET  # noqa: N815 - Prometheus answers queries sent as form bodies too


@contextmanager
def serve(cluster: FakeCluster, port: int = 0) -> Iterator[str]:
    """Serve ``cluster`` on loopback; yields the base URL."""
    handler = type("Handler", (_Handler,), {"cluster": cluster})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="fake-prometheus", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--series", type=int, default=33_000, help="series of the catalog's signals in all")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--pod-lifetime-hours", type=float, default=48.0)
    args = p.parse_args()
    cluster = FakeCluster(args.series, seed=args.seed, pod_lifetime_hours=args.pod_lifetime_hours)
    with serve(cluster, args.port) as url:
        print(url, flush=True)  # the parent reads the URL from the first line
        threading.Event().wait()


if __name__ == "__main__":
    main()
