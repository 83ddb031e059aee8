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


def test_entity_key_and_attributes_are_remembered_and_read_as_before() -> None:
    import copy
    import dataclasses
    import pickle

    attrs = (("node", "n1"), ("created_by_kind", "ReplicaSet"), ("node", "n2"))
    for entity in (Entity("pod", "p", "ns", attrs), Entity("node", "n1"), Entity("gpu", "g", "", attrs[:1])):
        key = f"{entity.kind}/{entity.namespace}/{entity.name}" if entity.namespace else f"{entity.kind}/{entity.name}"
        for e in (entity, copy.copy(entity), pickle.loads(pickle.dumps(entity)), dataclasses.replace(entity)):
            assert e.key == key and e.key is e.key  # computed once per entity
            for name in ("node", "created_by_kind", "absent"):
                assert e.attr(name) == dict(entity.attributes).get(name, "")  # the last pair of a name wins
                assert e.attr(name, "x") == dict(entity.attributes).get(name, "x")
            assert e == entity and hash(e) == hash(entity) and repr(e) == repr(entity)
    # What it remembers is no field: equality, ordering and replace read the fields alone.
    a, b = Entity("pod", "a", "ns", attrs), Entity("pod", "a", "ns")
    _ = a.key, a.attr("node")
    assert a == b and not a < b and dataclasses.replace(a, name="b").key == "pod/ns/b"
    assert dataclasses.replace(a, attributes=()).attr("node") == ""
