"""KServe v2 bodies: the JSON form carries float32 tensors exactly, and parsing errors are clear."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.errors import InvalidRequest
from service.kserve import build_infer_response, parse_infer_request


def test_json_output_round_trips_float32_bit_exactly():
    x = np.random.default_rng(0).random((2, 3, 4, 5), dtype=np.float32)
    x.flat[:4] = [0.1, 1e-30, 1.0, 0.0]
    req = parse_infer_request(json.dumps({"inputs": [{"name": "lr", "shape": [1], "datatype": "FP32", "data": [0.5]}]}).encode(), None)
    body, headers = build_infer_response("m", "1", req, {"sr": x})
    assert headers["Content-Type"] == "application/json"
    out = json.loads(body)["outputs"][0]  # what a client's stdlib json reads
    assert out["shape"] == [2, 3, 4, 5] and out["datatype"] == "FP32"
    back = np.asarray(out["data"], np.float32).reshape(x.shape)
    assert back.tobytes() == x.tobytes()


def test_json_and_binary_outputs_carry_the_same_values():
    x = np.random.default_rng(1).random((3, 7), dtype=np.float32)
    as_json = parse_infer_request(b'{"inputs":[{"name":"lr","shape":[1],"datatype":"FP32","data":[0]}]}', None)
    as_binary = parse_infer_request(b'{"inputs":[{"name":"lr","shape":[1],"datatype":"FP32","data":[0]}],"parameters":{"binary_data_output":true}}', None)
    j, _ = build_infer_response("m", "1", as_json, {"sr": x})
    b, headers = build_infer_response("m", "1", as_binary, {"sr": x})
    n = int(headers["Inference-Header-Content-Length"])
    assert np.frombuffer(b[n:], "<f4").tobytes() == np.asarray(json.loads(j)["outputs"][0]["data"], np.float32).tobytes()


@pytest.mark.parametrize("body", [b"{", b"\xff\xfe", b'{"inputs": [{"name": "lr", "shape": [1], "datatype": "FP32", "data": [NaN]}]}'])
def test_malformed_json_is_a_clear_invalid_request(body):
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_infer_request(body, None)
