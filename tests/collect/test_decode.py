"""Answers decoded straight into numpy must equal the plain JSON decode, whatever the labels hold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiops.collect.decode import AnswerError, decode_answer, decode_result


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
