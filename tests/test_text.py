"""Plain text shared by reports, notifications, advice and config checks."""

from __future__ import annotations

from aiops.text import listed, sparkline


def test_sparkline_scales_values_and_shows_gaps() -> None:
    assert sparkline([0.0, 0.5, float("nan"), 1.0]) == "▁▅ █"
    assert sparkline([0.0, float("inf"), float("-inf"), 1.0]) == "▁  █"
    assert sparkline([float("nan")]) == ""
    assert sparkline([3.0, 3.0]) == "▅▅"
    assert sparkline(list(range(30)), width=4) == "▁▃▆█"


def test_a_long_list_says_how_many_it_left_out() -> None:
    assert listed(["a", "b"]) == "a, b"
    assert listed([f"n{i}" for i in range(7)], shown=3) == "n0, n1, n2 and 4 more"
    assert listed([]) == ""
