"""Each signal's plausible range: from its unit by default, overridable, checked at load."""

from __future__ import annotations

import math

import pytest

from aiops.config import ConfigError, parse_config
from aiops.config.signals import DCGM_FP64_BLANK, UNIT_RANGES, Plausible, unit_range


def problems(data: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)  # type: ignore[arg-type]
    return dict(info.value.problems)


def test_every_catalog_signal_has_a_range_from_its_unit() -> None:
    signals = parse_config({}).resolved_signals()
    got = {n: s.plausible() for n, s in signals.items()}
    assert got["gpu_utilization"] == Plausible(0.0, 110.0, blanks=True)
    assert got["gpu_temperature"] == Plausible(-40.0, 150.0, blanks=True)
    assert got["gpu_row_remap_failure"] == Plausible(0.0, 1.0, blanks=True)
    assert got["gpu_xid"] == Plausible(0.0, math.inf, blanks=True)
    assert got["pod_memory_usage_ratio"] == Plausible(-0.1, 10.0, blanks=False)
    assert got["pod_restarts"] == Plausible(0.0, math.inf, blanks=False)  # restarts/15m: an increase()
    assert got["inference_request_rate"] == Plausible(0.0, math.inf, blanks=False)  # requests/s
    # Every built-in unit says something (a catalog signal in a unit nobody bounded is an oversight).
    assert all(p.bounded for p in got.values()), [n for n, p in got.items() if not p.bounded]
    # DCGM's blanks are checked on the GPU signals only: a node's filesystem passes 2^47 bytes.
    assert {n for n, p in got.items() if p.blanks} == {n for n, s in signals.items() if s.entity == "gpu"}


def test_a_unit_nobody_bounded_is_unbounded() -> None:
    assert unit_range("") == (-math.inf, math.inf)
    assert unit_range("furlongs") == (-math.inf, math.inf)
    assert unit_range("errors/10m") == (0.0, math.inf)
    assert set(UNIT_RANGES) >= {"percent", "ratio", "bool", "celsius", "watts"}


def test_a_range_is_overridden_per_signal_and_a_bound_left_out_keeps_the_units() -> None:
    cfg = parse_config({"signals": {
        "gpu_utilization": {"valid": {"max": 200}},
        "gpu_power": {"valid": {"min": -5, "max": 5e3}, "dcgm_blanks": False},
        "gpu_temperature": {"unit": "kelvin"},  # a new unit: its range (none) comes with it
        "queue_depth": {"query": "q", "entity": "service", "unit": "jobs", "valid": {"min": 0}},
    }})
    got = {n: s.plausible() for n, s in cfg.resolved_signals().items()}
    assert got["gpu_utilization"] == Plausible(0.0, 200.0, blanks=True)
    assert got["gpu_power"] == Plausible(-5.0, 5e3, blanks=False)
    assert got["gpu_temperature"] == Plausible(-math.inf, math.inf, blanks=True)
    assert got["queue_depth"] == Plausible(0.0, math.inf, blanks=False)
    unbounded = parse_config({"signals": {"gpu_utilization": {"valid": {"max": math.inf}}}})
    assert unbounded.resolved_signals()["gpu_utilization"].plausible().high == math.inf


def test_a_bad_range_is_refused_with_what_to_do() -> None:
    msg = problems({"signals": {"gpu_utilization": {"valid": {"min": 100, "max": 0}}}})["signals.gpu_utilization.valid"]
    assert "valid.min (100) must be below valid.max (0)" in msg and "{min: 0, max: 110}" in msg, msg
    msg = problems({"signals": {"gpu_utilization": {"valid": {"max": math.nan}}}})["signals.gpu_utilization.valid"]
    assert "not NaN" in msg, msg
    # One bound past the unit's other: the resolved range is empty.
    msg = problems({"signals": {"gpu_utilization": {"valid": {"min": 500}}}})[""]
    assert msg.startswith("signals.gpu_utilization.valid: the range [500, 110] is empty") and "give both" in msg, msg
    assert "unknown key" in problems({"signals": {"gpu_utilization": {"valid": {"maximum": 1}}}})[
        "signals.gpu_utilization.valid.maximum"]


def test_the_fp64_blank_is_above_any_gpu_quantity_and_below_the_int64_blanks() -> None:
    assert DCGM_FP64_BLANK == 140737488355328.0
    assert float(0x7FFFFFFFFFFFFFF0) > DCGM_FP64_BLANK
    assert 192e9 < DCGM_FP64_BLANK  # the largest GPU framebuffer, in bytes
