"""The replay fixture carries the exporters' real semantics (no Prometheus needed)."""

from __future__ import annotations

import numpy as np
import pytest

from aiops.testing.cluster_history import E2E_BUCKETS, FB_MIB, ITL_BUCKETS, TTFT_BUCKETS, HistorySpec, generate
from aiops.testing.cluster_profiles import US_EAST


@pytest.fixture(scope="module")
def hist():
    return generate(HistorySpec(hours=12, filler_pods=10))


def _series(hist, name, **labels):
    return [s for s in hist.gauges + hist.counters if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def _hours(hist, name):
    inc = next(i for i in hist.incidents if i["name"].startswith(name))
    return (inc["failure_at"] - hist.spec.start).total_seconds() / 3600


def test_xid_is_sticky_and_other_gpu_fields_vanish_off_the_bus(hist) -> None:
    xid_h = _hours(hist, "XID 79")
    h = (hist.t - hist.t[0]) / 3600
    (xid,) = [s for s in _series(hist, "DCGM_FI_DEV_XID_ERRORS", Hostname="gpu-node-2", gpu="1") if "pod" not in s.labels]
    after = h >= xid_h
    # Present and 79 from the event to the end, through the outage and after the repair.
    assert np.all(xid.values[after] == 79)
    utils = _series(hist, "DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-2", gpu="1")
    gone = (h >= xid_h) & (h < xid_h + 0.5)
    assert all(np.isnan(s.values[gone]).all() for s in utils)
    assert any(np.isfinite(s.values[h > xid_h + 1]).any() for s in utils)  # back after the reboot


def test_dcgm_labels_change_when_a_pod_attaches(hist) -> None:
    utils = _series(hist, "DCGM_FI_DEV_GPU_UTIL", Hostname="gpu-node-1", gpu="2")
    with_pod = [s for s in utils if "pod" in s.labels]
    without = [s for s in utils if "pod" not in s.labels]
    assert len(with_pod) == 1 and len(without) == 1
    first_pod = np.flatnonzero(np.isfinite(with_pod[0].values))[0]
    last_bare = np.flatnonzero(np.isfinite(without[0].values))[-1]
    assert last_bare < first_pod  # one label set ends where the other begins


def test_vllm_series_absent_while_restarting_and_counters_start_again(hist) -> None:
    xid_h = _hours(hist, "XID 79")
    h = (hist.t - hist.t[0]) / 3600
    ttft = [x for x in hist.histograms if x.name == "vllm:time_to_first_token_seconds"
            and x.labels["model_name"] == "llama-3-8b"]
    assert len(ttft) == 3  # two replicas and the replacement under a new pod name
    crashed = next(x for x in ttft if np.isnan(x.sums[h >= xid_h]).all() and np.isfinite(x.sums[h < xid_h]).all())
    assert crashed is not None
    replacement = next(x for x in ttft if np.isnan(x.sums[0]))
    first = np.flatnonzero(np.isfinite(replacement.sums))[0]
    assert replacement.counts[-1, first] < 2000  # a fresh process counts from zero
    for x in ttft:  # cumulative buckets never decrease in le and match vLLM's boundaries
        assert x.buckets == TTFT_BUCKETS
        ok = np.isfinite(x.sums)
        assert np.all(np.diff(x.counts[:, ok], axis=0) >= 0)
    assert {x.buckets for x in hist.histograms} == {TTFT_BUCKETS, ITL_BUCKETS, E2E_BUCKETS}


def test_owners_batch_bare_and_rolled_pods(hist) -> None:
    kinds = {s.labels["pod"]: s.labels["created_by_kind"] for s in _series(hist, "kube_pod_info")}
    assert any(p.startswith("nightly-report-") and k == "Job" for p, k in kinds.items())
    assert kinds["notebook-alice"] == "<none>"
    web = {p for p in kinds if p.startswith("web-")}
    assert len({p.rsplit("-", 2)[1] for p in web}) == 2  # two ReplicaSets: the rollout renamed the pods
    owners = {s.labels["pod"]: s.labels["owner_kind"] for s in _series(hist, "kube_pod_owner")}
    assert owners["notebook-alice"] == "<none>"


def test_diurnal_traffic_follows_local_time(hist) -> None:
    # 20:00 local at the start; the trough is at 04:00 local (8 h later).
    spec = HistorySpec(hours=24, filler_pods=0, cpu_nodes=2)
    b = generate(spec)
    qwen = next(s for s in b.counters if s.name == "vllm:prompt_tokens_total" and s.labels["model_name"] == "qwen2-7b")
    rate = qwen.values[60:] - qwen.values[:-60]  # an hour's tokens: a minute's are noisy
    h = (b.t[60:] - b.t[0]) / 3600 - 0.5
    assert abs(h[np.argmin(rate)] - 8) < 1.0 and abs(h[np.argmax(rate)] - 20) < 1.0


def test_incidents_and_decoys_are_named(hist) -> None:
    names = [i["name"] for i in hist.incidents]
    assert len(names) == 5 and all(i["expected_action"] for i in hist.incidents)
    assert any(d.startswith("pod/batch/nightly-report-") for d in hist.decoys)
    assert "pod/research/notebook-alice" in hist.decoys


REQUEST_COUNTERS = (("vllm:request_success_total", "model_name"), ("nv_inference_request_success", "model"),
                    ("ts_inference_requests_total", "model_name"))


def _per_minute(hist) -> dict[str, np.ndarray]:
    """Requests counted per scrape, per model (summed over its pods; NaN where none reports)."""
    out: dict[str, np.ndarray] = {}
    for name, label in REQUEST_COUNTERS:
        for s in hist.counters:
            if s.name == name:
                d = np.r_[np.nan, np.diff(s.values)]
                d[d < 0] = np.nan
                key = f"{s.labels['namespace']}/{s.labels[label]}"
                tot = out.get(key, np.full(d.shape, np.nan))
                out[key] = np.where(np.isnan(tot), d, np.where(np.isnan(d), tot, tot + d))
    return out


@pytest.mark.parametrize("name", ["default", "us-east", "eu-rough", "ap-autoscale"])
def test_request_counts_scatter_per_scrape_and_days_differ(name: str) -> None:
    # Real request counters are Poisson-like (and burstier), and no two days carry the same
    # traffic; exact counters let a demand forecast pass that production would page on.
    from aiops.testing.cluster_profiles import profile

    def run(seed: int, exact: bool):
        return generate(HistorySpec(hours=48, filler_pods=0, cpu_nodes=2, incident_offset_h=24, seed=seed,
                                    profile=profile(name), exact_requests=exact))

    runs = {seed: run(seed, False) for seed in (7, 11)}
    designed = _per_minute(run(7, True))
    ratios = {}
    for seed, hist in runs.items():
        n_min = _per_minute(hist)
        quiet = (hist.t - hist.t[0]) < 20 * 3600  # before any incident or rollout
        for model, n in n_min.items():
            x = n[quiet & np.isfinite(n)]
            # Scatter of one scrape around its neighbours: at least what Poisson counts give.
            resid = x[1:-1] - (x[:-2] + x[2:]) / 2
            rel = np.std(resid) / np.sqrt(1.5) / np.mean(x)
            assert rel >= 0.8 / np.sqrt(np.mean(x)), (name, seed, model, rel)
        # Day 2 over day 1, over the designed day 2 over day 1 (surges and all).
        for model, n in n_min.items():
            ok = np.isfinite(n) & np.isfinite(designed[model])
            day2 = (hist.t - hist.t[0]) >= 24 * 3600
            ratios[(seed, model)] = (np.sum(n[ok & day2]) / np.sum(n[ok & ~day2])
                                     / (np.sum(designed[model][ok & day2]) / np.sum(designed[model][ok & ~day2])))
    levels = np.array(list(ratios.values()))
    assert np.max(np.abs(levels - 1)) > 0.02, ratios  # days differ, by a few percent
    assert np.max(np.abs(levels - 1)) < 0.4, ratios  # not by a different cluster
    by_seed = {seed: [v for (s, _), v in ratios.items() if s == seed] for seed in runs}
    assert by_seed[7] != by_seed[11]  # drawn from the seed


def test_request_noise_keeps_the_incidents_timing() -> None:
    noisy = generate(HistorySpec(hours=48, filler_pods=0, cpu_nodes=2, incident_offset_h=24))
    exact = generate(HistorySpec(hours=48, filler_pods=0, cpu_nodes=2, incident_offset_h=24, exact_requests=True))
    for a, b in zip(noisy.incidents, exact.incidents, strict=True):
        assert a["name"] == b["name"]
        assert abs((a["static_alert_at"] - b["static_alert_at"]).total_seconds()) <= 120, a["name"]
        assert a["failure_at"] == b["failure_at"] or "surge" in a["name"], a["name"]


def _phases(hist) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    out: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for s in _series(hist, "kube_pod_status_phase"):
        key = (s.labels["namespace"], s.labels["pod"])
        assert s.labels["phase"] not in out.setdefault(key, {})  # one series per pod and phase
        out[key][s.labels["phase"]] = s.values
    return out


def test_every_listed_pod_has_one_current_phase(hist) -> None:
    # kube-state-metrics v2: kube_pod_status_phase is 1 for the pod's current phase, 0 for the others,
    # for as long as the pod is listed (its kube_pod_info).
    phases = _phases(hist)
    for info in _series(hist, "kube_pod_info"):
        listed = np.isfinite(info.values)
        mine = phases[(info.labels["namespace"], info.labels["pod"])]
        current = np.sum([np.nan_to_num(v) for v in mine.values()], axis=0)
        assert np.all(current[listed] == 1), info.labels["pod"]
        assert all(np.isnan(v[~listed]).all() for v in mine.values())


def test_a_cronjob_pod_succeeds_at_its_end_and_stays_listed(hist) -> None:
    # A completed Job's pod stays listed (Succeeded) until the CronJob's history limit deletes its
    # Job, with no container running; every other pod of the default cluster but the evaluation
    # Job's (Succeeded for good, on the node that later loses a GPU) is Running.
    phases = _phases(hist)
    jobs = [k for k in phases if k[1].startswith("nightly-report-")]
    assert jobs
    for ns, pod in jobs:
        (info,) = _series(hist, "kube_pod_info", namespace=ns, pod=pod)
        (ws,) = _series(hist, "container_memory_working_set_bytes", namespace=ns, pod=pod, container="report")
        ran, listed = np.isfinite(ws.values), np.isfinite(info.values)
        done = listed & ~ran
        assert ran.any() and done.sum() > 60  # listed for hours after its run
        assert np.all(phases[(ns, pod)]["Running"][ran] == 1) and np.all(phases[(ns, pod)]["Succeeded"][done] == 1)
        assert np.flatnonzero(ran)[-1] < np.flatnonzero(done)[0]
    (evaluation,) = [k for k in phases if k[0] == "ml-eval"]
    (info,) = _series(hist, "kube_pod_info", namespace="ml-eval")
    assert info.labels["node"] == "gpu-node-2" and info.labels["created_by_kind"] == "Job"
    assert phases[evaluation]["Succeeded"][-1] == 1
    others = {k: v for k, v in phases.items() if k not in jobs and k != evaluation}
    assert others and all(set(v) == {"Running"} for v in others.values())


def test_a_mig_gpu_reports_per_instance_and_no_utilisation() -> None:
    """us-east's MIG GPU as dcgm-exporter reports it (NVIDIA/dcgm-exporter#216): a series per GPU
    instance under the GPU's UUID, the pod of each slice on it (exported_*: us-east scrapes without
    honor_labels), the framebuffer of each instance, and a utilisation of 0 whatever runs. Before
    the operator switched it into MIG mode (``mig_from_h``) it was a whole, idle GPU; the pods came
    onto its slices 10 minutes after the switch."""
    assert US_EAST.mig_gpu is not None and US_EAST.mig_from_h is not None
    node, index = US_EAST.mig_gpu
    hist = generate(HistorySpec(hours=US_EAST.needed_hours(), filler_pods=2, profile=US_EAST))
    on_gpu = [s for s in hist.gauges if s.labels.get("Hostname") == node and s.labels.get("gpu") == str(index)]
    assert all(np.isfinite(s.values).any() for s in on_gpu)  # a segment without a sample writes no series
    mig = [s for s in on_gpu if "GPU_I_ID" in s.labels]
    whole = [s for s in on_gpu if "GPU_I_ID" not in s.labels]
    t_switch = hist.spec.start.timestamp() + US_EAST.mig_from_h * 3600
    assert whole and all(hist.t[np.isfinite(s.values)].max() < t_switch for s in whole)
    assert all(hist.t[np.isfinite(s.values)].min() >= t_switch for s in mig)
    assert mig and {s.labels.get("GPU_I_ID") for s in mig} == {"1", "2"}
    with_pod = [s for s in mig if "exported_pod" in s.labels]
    assert {s.labels["exported_pod"] for s in with_pod} == {d.split("/")[-1] for d in hist.decoys if d.startswith("pod/search/")}
    assert all(hist.t[np.isfinite(s.values)].min() >= t_switch + 600 for s in with_pod)
    assert all(np.nanmax(s.values) == 0 for s in mig if s.name == "DCGM_FI_DEV_GPU_UTIL")
    used = {tuple(sorted(s.labels.items())): s.values for s in mig if s.name == "DCGM_FI_DEV_FB_USED"}
    free = {tuple(sorted(s.labels.items())): s.values for s in mig if s.name == "DCGM_FI_DEV_FB_FREE"}
    assert used.keys() == free.keys()
    for key, values in used.items():  # each instance's own framebuffer: half the GPU's
        np.testing.assert_allclose((values + free[key])[np.isfinite(values)], FB_MIB / 2)
