"""Compressed v2 bodies are inflated incrementally, off the event loop, and refused once past TEXTSR_MAX_INFLATED_BYTES."""

from __future__ import annotations

import gzip
import time
import tracemalloc
import zlib

import httpx
import numpy as np
import pytest

from service.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from service.kserve import INFLATE_CHUNK, decompress

LIMIT = 64 * 1024 * 1024  # the default of TEXTSR_MAX_INFLATED_BYTES


def bomb(encoding: str, inflated: int = 400 * 1024 * 1024) -> bytes:
    """``inflated`` bytes of zeros compressed (a few hundred KB), made without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(inflated >> 20)) + packer.flush()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_bomb_is_refused_early_with_memory_bounded(encoding):
    body = bomb(encoding)
    assert len(body) < 1024 * 1024
    tracemalloc.start()
    t = time.perf_counter()
    with pytest.raises(PayloadTooLarge, match="inflates to more than the limit"):
        decompress(body, encoding, LIMIT)
    elapsed = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 2 * LIMIT + 2 * INFLATE_CHUNK  # the bytearray's growth may double it once; never the 400 MB


def test_roundtrip_and_bad_streams():
    data = np.random.default_rng(0).bytes(3 * INFLATE_CHUNK + 17)
    assert decompress(gzip.compress(data), "gzip", LIMIT) == data
    assert decompress(zlib.compress(data), "deflate", LIMIT) == data
    assert decompress(data, None, 10) == data  # identity is not inflated, so not limited here (the body limit applies)
    with pytest.raises(InvalidRequest, match="truncated"):
        decompress(gzip.compress(data)[:-100], "gzip", LIMIT)
    with pytest.raises(InvalidRequest, match="not valid deflate"):
        decompress(b"not deflate at all", "deflate", LIMIT)
    with pytest.raises(UnsupportedMediaType, match="'br' is not supported"):
        decompress(data, "br", LIMIT)


def test_bomb_over_http_is_413_fast_and_the_server_stays_well(server):
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    body = bomb("gzip")
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "10"}
    t = time.perf_counter()
    r = httpx.post(f"{server.url}/v2/models/{model}/infer", content=body, headers=headers, timeout=30)
    assert r.status_code == 413 and "inflates to more than the limit" in r.json()["error"]
    assert time.perf_counter() - t < 1.0
    assert httpx.get(server.url + "/readyz").status_code == 200


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_tritonclient_compressed_requests_still_work(server, algorithm):
    tc = pytest.importorskip("tritonclient.http")
    client = tc.InferenceServerClient(server.url.removeprefix("http://"))
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    x = np.random.default_rng(1).random((2, 3, 16, 64), dtype=np.float32)
    inp = tc.InferInput("lr", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    plain = client.infer(model, [inp]).as_numpy("sr")
    packed = client.infer(model, [inp], request_compression_algorithm=algorithm).as_numpy("sr")
    assert packed.shape == (2, 3, 32, 128) and np.abs(packed - plain).max() <= 1e-6
