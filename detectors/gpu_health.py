"""GpuHealth: hardware faults and throttling of NVIDIA GPUs, from dcgm-exporter signals.

What each signal means for the node (NVIDIA Xid catalog, "A100 GPU memory error management"):

* ``gpu_xid`` is the *code of the last XID* (a gauge, not a count). 79 (fell off the bus),
  64 (row remap failed), 95 (uncontained ECC) and 48 (double-bit ECC) are failures that have
  already happened: ``confirmed=True``, score 1.0, and the node should be evacuated. 74 (NVLink)
  calls for a cordon and a reset. 63 (row remap pending) asks for a GPU reset at the next drain.
  94 (contained ECC) hits only the application on that GPU: restart that pod, the node stays.
  119/120 (GSP firmware) call for a reset; 154 is the driver saying a reset or reboot is required.
  8, 13, 31, 43 and 45 are raised by applications (their bugs, their killed processes): told,
  never acted on.
* ``gpu_ecc_dbe_rate`` > 0: new double-bit (uncorrectable) ECC errors, confirmed like XID 48.
* ``gpu_row_remap_failure`` = 1: a failed row remap, confirmed like XID 64 (RMA candidate).
* ``gpu_uncorrectable_remapped_rows`` rising: a remap is pending until the GPU is reset.
* ``gpu_clock_event_reasons`` (``DCGM_FI_DEV_CLOCKS_EVENT_REASONS`` bitmask, if configured) or a
  die temperature at the slowdown point: thermal or power throttling, a node risk, not a failure.

Findings are about the GPU entity; its attributes carry ``Hostname`` (the node) so that the
evacuate-node remediation can target the node. ``facts["node_action"]`` is NVIDIA's guidance in
words; which remediation follows is policy's (``policy.xid_remediation``), whose defaults say the
same: 94 restarts the pod on that GPU, the hard failures evacuate the node, 63 is advice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from aiops.model import Entity, EntityKind, Evidence, Finding, Frame, Series, from_epoch
from aiops.plugins import Detector, DetectorParams
from detectors._isolation import isolated
from detectors._univariate import by_signal

__all__ = ["XID_ACTIONS", "GpuHealth", "XidAction"]


@dataclass(frozen=True)
class XidAction:
    meaning: str
    node_action: str
    score: float
    confirmed: bool


XID_ACTIONS: dict[int, XidAction] = {
    48: XidAction("double-bit (uncorrectable) ECC error", "cordon, drain, GPU reset; look for a paired XID 63/64/94/95", 1.0, True),
    63: XidAction("row remap / page retirement recorded, pending until reset", "schedule a GPU reset at the next drain", 0.6, False),
    64: XidAction("row remap / page retirement failed", "cordon; RMA candidate", 1.0, True),
    74: XidAction("NVLink error", "cordon, reset, inspect links; repeats mean hardware", 0.9, False),
    79: XidAction("GPU fell off the bus", "cordon, drain, reboot the node; RMA if it recurs", 1.0, True),
    94: XidAction("contained ECC error (only the application on this GPU is hit)", "restart the affected pod; the node stays schedulable", 0.7, False),
    95: XidAction("uncontained ECC error (every application on this GPU is hit)", "drain the GPU's pods, then GPU reset or node reboot", 1.0, True),
    # GSP firmware (the GPU's own processor): a timeout or crash usually wedges the GPU.
    119: XidAction("GSP firmware RPC timeout", "drain the GPU's pods and reset the GPU; reboot the node if the reset fails", 0.9, False),
    120: XidAction("GSP firmware error", "drain the GPU's pods and reset the GPU; reboot the node if the reset fails", 0.9, False),
    # Recent drivers raise 154 right after the XID that needs it, so the last-XID gauge may read
    # 154 in place of a 79 or 95: the driver itself says the GPU is unusable until recovered.
    154: XidAction("the driver requires a GPU reset or a node reboot (GPU recovery action)", "drain the node, then reset the GPU or reboot", 1.0, True),
}
# Raised by an application on the GPU, not by the GPU (NVIDIA's catalog: restart the application):
# an illegal memory access, an engine exception, a stalled channel, the driver cleaning up after a
# killed process. Told at the report floor, never graded for action: the application's own crash
# or restart is what the pod signals show.
_APPLICATION = "look at the application (its logs, the CUDA error it got); the GPU is fine unless this repeats across applications"
XID_ACTIONS.update({
    code: XidAction(f"{meaning}, raised by an application", _APPLICATION, 0.5, False)
    for code, meaning in (
        (8, "GPU stopped processing (an application's channel timed out)"),
        (13, "graphics engine exception (an application error)"),
        (31, "GPU memory page fault (an application's illegal memory access)"),
        (43, "GPU stopped processing (an application's channel was stopped)"),
        (45, "preemptive cleanup (the driver freed a killed or faulted application's channels)"),
    )
})
# A standing (sticky) XID level: shown as information, never graded for action.
STICKY_SCORE = 0.5
UNKNOWN_XID = XidAction("XID not in the built-in table", "look the code up in NVIDIA's Xid catalog", 0.5, False)

# DCGM clock event (throttle) reason bits that mean the GPU is held back by heat or power.
THROTTLE_BITS: dict[int, str] = {
    0x04: "software power cap",
    0x08: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


class GpuHealthParams(DetectorParams):
    """The parameters of :class:`GpuHealth`."""

    slowdown_celsius: float = 87.0
    throttle_score: float = Field(default=0.7, ge=0, le=1)


class GpuHealth(Detector):
    name: ClassVar[str] = "gpu_health"
    Params = GpuHealthParams
    params: GpuHealthParams
    default_signals: ClassVar[tuple[str, ...]] = (
        "gpu_xid",
        "gpu_ecc_dbe_rate",
        "gpu_row_remap_failure",
        "gpu_uncorrectable_remapped_rows",
        "gpu_clock_event_reasons",
        "gpu_temperature",
    )

    def detect(self, frame: Frame) -> list[Finding]:
        checks = {
            "gpu_xid": self._xid,
            "gpu_ecc_dbe_rate": self._ecc_dbe,
            "gpu_row_remap_failure": self._remap_failure,
            "gpu_uncorrectable_remapped_rows": self._remap_pending,
            "gpu_clock_event_reasons": self._throttle_reasons,
            "gpu_temperature": self._temperature,
        }
        # Where the window starts (an XID gauge already at its code there is a level, not an event:
        # Frame.began_inside) is computed once per frame, when an XID check first needs it.
        return self._detect(frame, checks)

    def could_find(self, signal: str, first: float, last: float) -> bool:
        """Whether the check of ``signal`` can find anything in a series that starts at ``first``
        and ends at ``last`` (both finite): exactly the conditions under which it returns None,
        so that thousands of healthy GPUs are passed over without copying their points (the
        equality with the full checks is tested)."""
        if signal == "gpu_xid":
            return bool(np.rint(last) > 0)
        if signal == "gpu_ecc_dbe_rate":
            return last > 0
        if signal == "gpu_row_remap_failure":
            return not last < 1
        if signal == "gpu_uncorrectable_remapped_rows":
            return not float(last - first) <= 0
        if signal == "gpu_clock_event_reasons":
            return last > 0 and any(int(last) & bit for bit in THROTTLE_BITS)
        if signal == "gpu_temperature":
            return not last < self.params.slowdown_celsius and not last > MAX_CELSIUS
        return True

    def _detect(self, frame: Frame, checks: dict[str, Callable[..., Finding | None]]) -> list[Finding]:
        findings = []
        grouped = by_signal(frame, self.signals)
        for signal in self.signals:
            check = checks.get(signal)
            if check is None or signal in frame.missing_signals:
                continue
            for series in grouped.get(signal, ()):
                y = series.values
                if y.shape[0] and math.isfinite(y[0]) and math.isfinite(y[-1]):
                    if not self.could_find(signal, float(y[0]), float(y[-1])):
                        continue
                valid = np.isfinite(series.values)  # Inf is as unusable as a gap (an XID code is finite)
                if not valid.any():
                    continue  # no data is not health: say nothing, policy sees the missing signal
                finding = isolated(self.name, series, check, frame, series, series.timestamps[valid], series.values[valid])
                if finding is not None and finding.score >= self.report_floor:
                    findings.append(finding)
        return findings

    # -- one check per signal ----------------------------------------------------------------------
    def _xid(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        code = int(np.rint(y[-1]))
        if code <= 0:
            return None
        action = XID_ACTIONS.get(code, UNKNOWN_XID)
        since = _switched_to(code, t, y)
        # The gauge is sticky: it holds the last XID until the driver or the exporter restarts. Only
        # a change (or a series that appears with the code: a new GPU attachment) is an event; a
        # code that stood since the window began is old news, whatever was done about it.
        if not frame.began_inside(since):
            return self._finding(
                frame, series, STICKY_SCORE,
                f"XID {code} on {_where(series)} has stood since before {from_epoch(since):%H:%M UTC}: "
                "the gauge keeps the last XID until the driver or exporter restarts; not a new event.",
                {"xid": code, "meaning": action.meaning, "sticky": True, "since": from_epoch(since).isoformat()},
                False, t, y,
            )
        facts: dict[str, Any] = {
            "xid": code,
            "meaning": action.meaning,
            "node_action": action.node_action,
            "since": from_epoch(since).isoformat(),
        }
        subject = ""
        if code == 94:  # only the application on this GPU is hit: which one is it?
            pod = _pod_of(series)
            pods = [pod] if pod else _pods_on(frame, series, float(since))
            if len(pods) == 1:
                facts["pod"] = pods[0]
                subject = f" (pod {pods[0]})"
            elif pods:
                facts["pods"] = pods
                subject = f" (pods {', '.join(pods)} share this GPU: which one it hit is not known)"
        return self._finding(
            frame, series, action.score, f"XID {code} on {_where(series)}{subject}: {action.meaning}. {_sentence(action.node_action)}.", facts, action.confirmed, t, y
        )

    def _ecc_dbe(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        if y[-1] <= 0:
            return None
        facts = {"errors": float(y[-1]), "node_action": XID_ACTIONS[48].node_action}
        return self._finding(
            frame, series, 1.0, f"{y[-1]:g} new double-bit ECC error(s) on {_where(series)}: uncorrectable memory errors. {_sentence(XID_ACTIONS[48].node_action)}.", facts, True, t, y
        )

    def _remap_failure(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        if y[-1] < 1:
            return None
        facts = {"node_action": XID_ACTIONS[64].node_action}
        return self._finding(frame, series, 1.0, f"row remapping failed on {_where(series)}: RMA candidate. Cordon the node.", facts, True, t, y)

    def _remap_pending(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        increase = float(y[-1] - y[0])
        if increase <= 0:
            return None
        facts = {"rows": float(y[-1]), "increase": increase, "node_action": XID_ACTIONS[63].node_action}
        return self._finding(
            frame, series, XID_ACTIONS[63].score,
            f"{increase:g} row(s) remapped after uncorrectable ECC errors on {_where(series)} (now {y[-1]:g}); "
            "the remap is pending until a GPU reset: schedule one at the next drain.",
            facts, False, t, y,
        )

    def _throttle_reasons(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        mask = int(y[-1]) if y[-1] > 0 else 0
        reasons = [text for bit, text in THROTTLE_BITS.items() if mask & bit]
        if not reasons:
            return None
        facts = {"reasons": reasons, "bitmask": mask, "node_action": "check cooling and power capping of the node"}
        return self._finding(frame, series, self.params.throttle_score, f"{_where(series)} is throttled: {', '.join(reasons)}.", facts, False, t, y)

    def _temperature(self, frame: Frame, series: Series, t: np.ndarray, y: np.ndarray) -> Finding | None:
        if y[-1] < self.params.slowdown_celsius or y[-1] > MAX_CELSIUS:
            return None  # cool, or a reading no die can have (a broken exporter): not throttling
        facts = {
            "celsius": float(y[-1]), "slowdown_celsius": self.params.slowdown_celsius,
            "node_action": "check cooling; the GPU slows itself down at this temperature",
        }
        return self._finding(
            frame, series, self.params.throttle_score,
            f"{_where(series)} is at {y[-1]:.0f} °C, at or above the slowdown point ({self.params.slowdown_celsius:.0f} °C): thermal throttling.",
            facts, False, t, y,
        )

    def _finding(
        self, frame: Frame, series: Series, score: float, summary: str, facts: dict[str, Any], confirmed: bool, t: np.ndarray, y: np.ndarray
    ) -> Finding:
        node = series.entity.attr("Hostname") or series.labels.get("Hostname", "")
        facts = {**facts, "node": node} if node else dict(facts)
        # The node it is on, and the pods an XID hit (namespace/pod), as entity keys.
        pods = [facts["pod"]] if "pod" in facts else list(facts.get("pods", ()))
        related = ((f"node/{node}",) if node else ()) + tuple(f"pod/{p}" for p in pods if "/" in p)
        return Finding(
            detector=self.name,
            signal=series.signal,
            entity=series.entity,
            score=score,
            observed_at=from_epoch(float(t[-1])),
            evidence=Evidence(summary=summary, recent=tuple(float(v) for v in y[-30:]), facts=facts, related=related),
            confirmed=confirmed,
        )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


# No GPU die reads past this (they shut down near 100 °C): a higher reading is a broken exporter.
# The catalog's celsius range (aiops/config/signals.py, UNIT_RANGES) has the collector drop such a
# reading before any detector sees it; this bound, the same, stays for frames built otherwise (a
# plugin's caller, a test) and for a temperature signal whose range a user widened or unit changed.
MAX_CELSIUS = 150.0

# dcgm-exporter reads a field as 0 for a scrape or two while it restarts, then (a standalone
# hostengine keeps it) the held XID again: no longer than this, a run of zeros is that restart.
EXPORTER_RESTART_SECONDS = 300.0


def _switched_to(code: int, t: np.ndarray, y: np.ndarray) -> float:
    """When the gauge switched to ``code`` within the window (its first point when it never
    switched). Zeros for an exporter's restart between the same code are not a switch; a longer
    run of them (the driver reloaded: the node was repaired) followed by the code is."""
    codes = np.round(y)
    end = codes.shape[0]
    while True:
        other = np.flatnonzero(codes[:end] != code)
        if not other.size:
            return float(t[0])
        last = int(other[-1])
        code_before = np.flatnonzero(codes[:last] == code)
        gap_start = int(code_before[-1]) + 1 if code_before.size else -1
        if (
            gap_start <= 0
            or np.any(codes[gap_start : last + 1] > 0)
            or t[last] - t[gap_start] > EXPORTER_RESTART_SECONDS
        ):
            return float(t[last + 1])
        end = gap_start  # the same code on both sides of a short run of zeros: it held


def _where(series: Series) -> str:
    gpu = series.entity.attr("gpu") or series.labels.get("gpu", "")
    node = series.entity.attr("Hostname") or series.labels.get("Hostname", "")
    if gpu and node:
        return f"GPU {gpu} of node {node}"
    return f"GPU {series.entity.name}" + (f" of node {node}" if node else "")


def _pods_on(frame: Frame, gpu: Series, since: float) -> list[str]:
    """The pods dcgm-exporter's pod mapping puts on ``gpu`` when its XID came (``gpu_pods``: one
    series per GPU and pod attached), as ``namespace/pod``.

    Without ``honor_labels`` Prometheus renames the exporter's pod/namespace labels to
    ``exported_*`` and sets pod/namespace to the exporter's own pod, on every series of that
    exporter, idle GPUs included: there the exported pair names the workload, and a bare pod label
    names nobody to restart. A DaemonSet's pod (``pod_info``) is never the workload on a GPU. A
    pod gone since (replaced, deleted: its mapping among the frame's vanished series) is still
    the one the XID hit: policy then sees it gone, and nothing is left to do."""
    mapped = [*frame.of("gpu_pods"), *(s for s in frame.vanished if s.signal == "gpu_pods")]
    if not mapped:
        return []
    renamed = {s.labels.get("Hostname", "") for s in mapped if s.labels.get("exported_pod")}
    daemonsets = {s.entity.key for s in frame.of("pod_info") if s.entity.attr("created_by_kind") == "DaemonSet"}
    step = frame.step_seconds
    pods: set[str] = set()
    for s in mapped:
        if s.entity.name != gpu.entity.name:
            continue
        t = s.timestamps[np.isfinite(s.values)]
        if not t.shape[0] or t[0] > since + step or t[-1] < since - step:
            continue  # not attached when the XID came
        if s.labels.get("exported_pod"):
            namespace, pod = s.labels.get("exported_namespace", ""), s.labels["exported_pod"]
        elif s.labels.get("Hostname", "") in renamed:
            continue
        else:
            namespace, pod = s.labels.get("namespace", ""), s.labels.get("pod", "")
        if pod and Entity(kind=EntityKind.POD, name=pod, namespace=namespace).key not in daemonsets:
            pods.add(f"{namespace}/{pod}" if namespace else pod)
    return sorted(pods)


def _pod_of(series: Series) -> str:
    pod = series.labels.get("pod", "")
    namespace = series.labels.get("namespace", "")
    return f"{namespace}/{pod}" if pod and namespace else pod
