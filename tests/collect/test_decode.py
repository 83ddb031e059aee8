"""Answers decoded straight into numpy must equal the plain JSON decode, whatever the labels hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiops.collect.decode import AnswerError, LabelMemo, decode_answer, decode_result


def body(result: list[dict], *, compact: bool = True, result_type: str = "matrix") -> bytes:
    answer = {"status": "success", "data": {"resultType": result_type, "result": result}}
    return json.dumps(answer, separators=(",", ":") if compact else None, indent=None if compact else 1).encode()


RESULT = [
    # A label value that looks like the samples array must not be cut.
    {"metric": {"pod": "a", "tricky": 'x,"values":[[1,"2"]]\\'}, "values": [[1700000000, "1.5"], [1700000060, "NaN"]]},
    {"metric": {}, "values": []},
    {"metric": {"native": "histogram"}, "histograms": [[1700000000, {"count": "3", "sum": "1"}]]},
    {"metric": {"pod": "b"}, "values": [[1700000000.5, "+Inf"], [1700000060.5, "-Inf"], [1700000120.5, "1e-300"]]},
]


@pytest.mark.parametrize("compact", [True, False], ids=["prometheus", "pretty-printed proxy"])
def test_fast_decode_equals_the_plain_json_decode(compact: bool) -> None:
    answer, block = decode_answer(body(RESULT, compact=compact))
    expected = decode_result(RESULT)
    assert answer["status"] == "success" and block is not None
    assert block.labels == expected.labels
    np.testing.assert_array_equal(block.counts, [2, 0, 0, 3])
    np.testing.assert_array_equal(block.timestamps, expected.timestamps)
    np.testing.assert_array_equal(block.values, expected.values)
    assert np.isnan(block.values[1]) and block.values[2] == np.inf and block.values[3] == -np.inf


def test_split_gives_one_raw_series_per_label_set() -> None:
    _, block = decode_answer(body(RESULT))
    assert block is not None
    series = block.split()
    assert [len(s) for s in series] == [2, 0, 0, 3] and series[3].labels == {"pod": "b"}


def test_instant_vectors_decode_too() -> None:
    vector = [{"metric": {"job": "x"}, "value": [1700000000, "4"]}]
    _, block = decode_answer(body(vector, result_type="vector"))
    assert block is not None and block.values.tolist() == [4.0] and block.labels == [{"job": "x"}]


def test_errors_and_scalars_have_no_block_and_non_json_is_refused() -> None:
    answer, block = decode_answer(b'{"status":"error","errorType":"bad_data","error":"parse error"}')
    assert block is None and answer["errorType"] == "bad_data"
    assert decode_answer(body([1, "1"], result_type="scalar"))[1] is None  # type: ignore[list-item]
    with pytest.raises(AnswerError):
        decode_answer(b"<html>proxy login</html>")


def test_a_sample_the_fast_path_cannot_read_falls_back_to_json() -> None:
    odd = [{"metric": {"pod": "a"}, "values": [[1700000000, "0x1p3"]]}]
    with pytest.raises(ValueError):  # what the plain decode says about it, not a silent wrong number
        decode_answer(body(odd))


def _many(points_per_series: int) -> list[dict]:
    """Three series with every kind of sample Prometheus writes, ``points_per_series`` each."""
    rng = np.random.default_rng(7)
    kinds = ["NaN", "+Inf", "-Inf", "0", "1e-300", "-2.5e+17"]
    out = []
    for s in range(3):
        vals = [repr(float(v)) for v in rng.normal(size=points_per_series) * 10.0 ** rng.integers(-9, 12)]
        vals[:: 7] = [kinds[i % len(kinds)] for i in range(len(vals[::7]))]
        out.append({"metric": {"pod": f"p{s}"}, "values": [[1700000000 + 60 * i, v] for i, v in enumerate(vals)]})
    return out


@pytest.mark.parametrize("per_series", [3, 400], ids=["steady answer (numpy)", "cold chunk (CSV reader)"])
def test_small_and_large_answers_equal_the_plain_json_decode(per_series: int) -> None:
    result = _many(per_series)
    _, block = decode_answer(body(result))
    expected = decode_result(result)
    assert block is not None and block.labels == expected.labels
    np.testing.assert_array_equal(block.counts, [per_series] * 3)
    np.testing.assert_array_equal(block.timestamps, expected.timestamps)
    np.testing.assert_array_equal(block.values, expected.values)  # bit for bit, NaN where NaN


@pytest.mark.parametrize("per_series", [3, 400], ids=["steady answer (numpy)", "cold chunk (CSV reader)"])
@pytest.mark.parametrize("odd", ["1e", ""], ids=["cut short", "empty"])
def test_a_malformed_sample_in_any_answer_is_refused_as_json_would(per_series: int, odd: str) -> None:
    result = _many(per_series)
    result[1]["values"][2][1] = odd
    with pytest.raises(ValueError):
        decode_answer(body(result))


@pytest.mark.parametrize(
    "metrics",
    [
        [{"a": 1}, {"b": "x"}],  # a number
        [{"a": None}, {"b": "x"}],  # null
        [{"a": {"c": "d"}}, None],  # an object, and a series without "metric" to even the count
        [{"a": ["c"]}, {"b": "x"}],  # an array
        [{"a": 'say ":{ and ":['}, {"b": "x"}],  # look-alikes inside a string
    ],
    ids=["number", "null", "object", "array", "look-alike"],
)
def test_label_values_that_are_not_strings_become_strings_as_in_the_plain_decode(metrics: list) -> None:
    result = [({"metric": m} if m is not None else {}) | {"values": [[1700000000, "1"]]} for m in metrics]
    _, block = decode_answer(body(result))
    assert block is not None and block.labels == decode_result(result).labels
    assert all(isinstance(v, str) for lab in block.labels for v in lab.values())


def test_a_label_memo_reuses_the_last_labels_and_decodes_the_same() -> None:
    """A steady cycle's answer repeats the labels of the last one with new samples: the memo hands
    out the same label list, and the block is what a decode without it gives."""
    memo = LabelMemo()
    first = [{"metric": {"pod": "a"}, "values": [[1700000000, "1"]]}, {"metric": {"pod": "b"}, "values": []}]
    later = [{"metric": {"pod": "a"}, "values": [[1700000060, "2"], [1700000120, "NaN"]]},
             {"metric": {"pod": "b"}, "values": [[1700000120, "+Inf"]]}]
    other = [{"metric": {"pod": "c"}, "values": [[1700000180, "3"]]}]
    _, a = decode_answer(body(first), memo)
    _, b = decode_answer(body(later), memo)
    _, c = decode_answer(body(other), memo)
    assert a is not None and b is not None and c is not None
    assert b.labels is a.labels and c.labels is not a.labels
    for result, block in ((first, a), (later, b), (other, c)):
        _, plain = decode_answer(body(result))
        assert plain is not None and block.labels == plain.labels
        np.testing.assert_array_equal(block.counts, plain.counts)
        assert block.timestamps.tobytes() == plain.timestamps.tobytes()
        assert block.values.tobytes() == plain.values.tobytes()
    # An error answer in between changes nothing the memo holds.
    decode_answer(b'{"status":"error","errorType":"bad_data","error":"x"}', memo)
    _, d = decode_answer(body(other), memo)
    assert d is not None and d.labels is c.labels
