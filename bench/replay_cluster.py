"""``aiops replay`` over 48 h of the realistic cluster fixture (~1,000 raw series), one cycle a minute.

Generates :mod:`aiops.testing.cluster_history` (incidents on the second day, so daily baselines
exist first), backfills it into the Debian ``prometheus`` with promtool, then runs
``python -m aiops replay`` in a child process pinned to one core (``taskset -c 0`` where available)
with the default config, and prints:

- the replay's wall time (the target is <= 5 min for 48 h at one cycle a minute on one core);
- the report's figures: per incident the first warning, the first action and their lead before
  the static alert; actions outside incidents (decoys: batch job, rollout, bare pod, kube-system);
  decisions still standing an hour after their incident resolved; pages per day per 1,000 series.

``--start-hours H`` starts the daemon H hours into the history (a restart: it learns what lies
before its first frame). ``--profile NAME`` picks another cluster (:mod:`aiops.testing.cluster_profiles`: ``us-east``,
``eu-rough``) and ``--seed`` another draw of its noise and names, to check that the defaults hold
beyond the cluster they were first checked on. ``--store victoria-metrics`` imports the history into
the Debian ``victoria-metrics`` instead and replays against it (MetricsQL answering the default
catalog's queries).

Run: ``nice -n 10 python bench/replay_cluster.py [--profile default] [--seed 7] [--hours 48] [--every 1m]
[--out bench/results/replay-PROFILE]``.
Prints a table; asserts nothing. The figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from aiops.evaluation.replay_report import incidents_warned
from aiops.testing.cluster_history import HistorySpec, generate, incidents_yaml
from aiops.demo.prometheus import ManagedServer, PrometheusServer
from aiops.testing.cluster_profiles import PROFILES, profile
from aiops.testing.victoria_metrics import VictoriaMetricsServer


def _store_cpu(url: str) -> float:
    """CPU seconds the store's process has used, from its own /metrics."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        # Prometheus types it (a counter: the family drops _total); VictoriaMetrics writes no TYPE.
        if family.name in ("process_cpu_seconds", "process_cpu_seconds_total"):
            return float(family.samples[0].value)
    raise RuntimeError("the store exported no process_cpu_seconds_total")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=48.0)
    p.add_argument("--every", default="1m")
    p.add_argument("--start-hours", type=float, default=6.0,
                   help="first cycle, hours into the history (6: the first with a full 6 h window); a later one "
                        "is a daemon (re)started then, which learns the history before its first frame")
    p.add_argument("--filler-pods", type=int, default=60, help="healthy ReplicaSet pods (60: ~1,000 raw series)")
    p.add_argument("--profile", default="default", choices=sorted(PROFILES), help="which cluster (default: default)")
    p.add_argument("--seed", type=int, default=HistorySpec.seed, help="noise and names of the fixture")
    p.add_argument("--step-s", type=int, default=HistorySpec.step_s,
                   help="the exporters' scrape interval in the fixture, seconds (the daemon's step stays its default)")
    p.add_argument("--overlay", type=Path, default=None,
                   help="YAML merged over the default config (e.g. a signal's query), to test a change of default")
    p.add_argument("--store", default="prometheus", choices=("prometheus", "victoria-metrics"),
                   help="what serves the history: the Debian prometheus (backfilled) or victoria-metrics (imported)")
    p.add_argument("--out", type=Path, default=None, help="report folder (default: bench/results/replay-PROFILE[-sSEED])")
    args = p.parse_args()
    if args.out is None:
        suffix = ("" if args.seed == HistorySpec.seed else f"-s{args.seed}") + (
            "" if args.step_s == HistorySpec.step_s else f"-{args.step_s}s") + (
            "" if args.store == "prometheus" else f"-{args.store}")
        args.out = Path(f"bench/results/replay-{args.profile}{suffix}")

    work = Path(tempfile.mkdtemp(prefix="aiops-bench-replay-"))
    try:
        t0 = time.perf_counter()
        hist = generate(HistorySpec(hours=args.hours, filler_pods=args.filler_pods, incident_offset_h=args.hours - 24,
                                    seed=args.seed, step_s=args.step_s, profile=profile(args.profile)))
        hist.write_openmetrics(work / "history.om")
        (work / "incidents.yaml").write_text(incidents_yaml(hist))
        print(f"profile {args.profile}, seed {args.seed}: generated {hist.series_count} raw series x {args.hours:g} h "
              f"in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        store: ManagedServer = (
            PrometheusServer(work / "prometheus", openmetrics=work / "history.om") if args.store == "prometheus"
            else VictoriaMetricsServer(work / "victoria-metrics", openmetrics=work / "history.om"))
        with store as server:
            print(f"loaded the history into {args.store} and started it in {time.perf_counter() - t0:.1f} s")
            config = yaml.safe_load(args.overlay.read_text()) if args.overlay else {}
            config["prometheus"] = {**config.get("prometheus", {}), "url": server.url}
            (work / "aiops.yaml").write_text(yaml.safe_dump(config))
            # The default lookback is 6 h: by default, replay from the first instant with a full window.
            start = hist.spec.start + timedelta(hours=args.start_hours)
            cmd = [sys.executable, "-m", "aiops", "replay", "--config", str(work / "aiops.yaml"),
                   "--from", start.isoformat(), "--to", hist.end.isoformat(), "--every", args.every,
                   "--incidents", str(work / "incidents.yaml"), "--out", str(args.out), "--json", "--no-progress"]
            if shutil.which("taskset"):
                cmd = ["taskset", "-c", "0", *cmd]
            t0 = time.perf_counter()
            cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            store0 = _store_cpu(server.url)
            run = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU time of the replay process alone: on a shared machine, wall time also counts waiting.
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            # The store answering the replay's queries (its own process_cpu_seconds_total).
            store_cpu = _store_cpu(server.url) - store0
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return run.returncode
        f = json.loads(run.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nreplay: {f['cycles']} cycles, {wall:.0f} s wall / {cpu:.0f} s CPU for the whole command on one core "
          f"(cycles {f['wall_seconds']} s, median cycle {f['cycle_seconds_median'] * 1000:.0f} ms), "
          f"{f['median_series']} series per cycle, {f['degraded_cycles']} degraded; "
          f"{args.store} answering it: {store_cpu:.0f} s CPU")
    print(f"{'incident':42} {'warn lead':>9} {'action lead':>11} {'wanted':>6}  first action")
    for r in f["incidents"]:
        print(f"{r['name']:42} {r['warning_lead_min']!s:>9} {r['action_lead_min']!s:>11} {r['wanted_lead_min']!s:>6}  "
              f"{r['first_action'] or 'none'}{'   (before the replay)' if r['met'] is None else '' if r['met'] else '   <- missed'}")
    print(f"incidents met: {incidents_warned(f)}")
    print(f"actions outside incidents (decoys): {len(f['actions_outside_incidents'])}")
    for d in f["actions_outside_incidents"]:
        print(f"  {d['first_at']} {d['action']} {d['entity']} ({d.get('rule', '')})")
    print(f"decisions standing 1 h after their incident resolved: {f['standing_after_resolved']}")
    print(f"decisions that never stop: {len(f['decisions_that_never_stop'])}")
    print(f"pages/day: {f['pages_per_day']}; outside incidents per 1,000 series: "
          f"{f['healthy_pages_per_day_per_1000_series']}; actions/day: {f['actions_per_day']}")
    dropped = ", ".join(f"{r['signal']} {r['reason']} {r['samples']}" for r in f["samples_rejected"]) or "none"
    print(f"impossible samples dropped: {dropped}")
    print(f"report: {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
