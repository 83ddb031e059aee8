"""The model's fast paths are the plain ones: Frame.grouped."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aiops.model import Entity, Frame, Series, series_key


def _series(signal: str, k: int) -> Series:
    labels = {"pod": f"p{k}", "namespace": "ns"}
    ts = 1e9 + 60.0 * np.arange(5)
    return Series(signal, labels, ts, np.full(5, k / 10), Entity("pod", f"p{k}", "ns"), series_key(signal, labels)[1])


def test_grouped_is_the_one_pass_grouping_in_the_frame_s_order() -> None:
    signals = ["b", "a", "c", "a", "b", "d", "a"]
    frame = Frame(datetime(2026, 1, 1, tzinfo=UTC), tuple(_series(s, k) for k, s in enumerate(signals)), {}, 60.0)

    def one_pass(wanted: list[str]) -> dict[str, list[Series]]:
        out: dict[str, list[Series]] = {}
        for s in frame.series:
            if s.signal in wanted:
                out.setdefault(s.signal, []).append(s)
        return out

    for wanted in (["a", "b"], ["a"], ["d", "c", "zz"], [], ["a", "b", "c", "d"]):
        got = frame.grouped(wanted)
        assert got == one_pass(wanted) and list(got) == list(one_pass(wanted))
    mine = frame.grouped(["a"])["a"]
    mine.clear()  # the caller's list: the frame's grouping is unchanged
    assert len(frame.of("a")) == 3 and len(frame.grouped(["a"])["a"]) == 3
