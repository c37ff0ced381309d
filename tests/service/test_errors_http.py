"""Every error code over HTTP is JSON naming what was wrong, and the server keeps serving."""

from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.service.conftest import ROOT, png_bytes, render_word

CROP = png_bytes(render_word("ok", 16, 64))


def err(r: httpx.Response, status: int, code: str, *needles: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code and body["request_id"]
    for n in needles:
        assert n in body["message"], body["message"]


@pytest.fixture(scope="module")
def limited(start_server):
    return start_server(TEXTSR_MAX_BODY_BYTES="200000", TEXTSR_MAX_IMAGE_PIXELS="1000000", TEXTSR_MAX_CROPS_PER_REQUEST="3")


def test_client_errors(limited):
    u = limited.url + "/v1/upscale"
    err(httpx.post(u, files={"file": ("x.png", b"not an image")}), 400, "invalid_image", "file[0] (x.png)", "not a decodable image")
    err(httpx.post(u, files={"file": ("x.png", b"")}), 400, "invalid_image", "empty")
    err(httpx.post(u, json={"images": ["@@@"]}), 400, "invalid_image", "images[0]", "base64")
    err(httpx.post(u, files={"other": ("x.png", CROP)}), 400, "invalid_request", "other")
    err(httpx.post(u, content=b"x" * 300_000, headers={"content-type": "image/png"}), 413, "payload_too_large", "300000 bytes")
    big = png_bytes(np.zeros((1100, 1000, 3), np.uint8))
    err(httpx.post(u, files={"file": ("big.png", big)}), 413, "payload_too_large", "1000x1100")
    err(httpx.post(u, files=[("file", ("a.png", CROP))] * 4), 413, "payload_too_large", "more than 3 files")
    err(httpx.post(u, json={"images": [""] * 4}), 413, "payload_too_large", "limit is 3")
    err(httpx.post(u, content=b"hello", headers={"content-type": "text/plain"}), 415, "unsupported_media_type", "text/plain")
    err(httpx.post(u, params={"mode": "stretch"}, files={"file": ("x.png", CROP)}), 422, "invalid_option", "mode")
    err(httpx.post(u, params={"recognize": "maybe"}, files={"file": ("x.png", CROP)}), 422, "invalid_option", "recognize")
    err(httpx.post(u, json={"images": ["aa"], "colour": 1}), 422, "invalid_option", "colour")
    err(httpx.post(u, params={"model": "nope"}, files={"file": ("x.png", CROP)}), 404, "model_not_found", "'nope'")
    err(httpx.get(limited.url + "/nope"), 404, "not_found")
    assert httpx.get(limited.url + "/readyz").status_code == 200
    assert httpx.post(u, files={"file": ("x.png", CROP)}).status_code == 200


def test_v2_errors_are_kserve_shaped(limited):
    model = httpx.get(limited.url + "/v1/models").json()["models"][0]["name"]
    u = f"{limited.url}/v2/models/{model}/infer"
    cases = [
        (b"{", "not valid JSON"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}).encode(), "unexpected inference input 'x' for model"),
        (json.dumps({"inputs": [{"name": "lr", "shape": [1, 3, 16, 64], "datatype": "FP32", "data": [1]}]}).encode(), "1 values for shape"),
        (json.dumps({"inputs": [{"name": "lr", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode(), "must have shape"),
    ]
    lr = {"name": "lr", "shape": [1, 3, 16, 64], "datatype": "FP32", "data": [0.5] * 3072}
    # as strict as Triton (../shared/reference/serving-protocols.md), in its words where it has them
    cases += [(json.dumps(doc).encode(), needle) for doc, needle in [
        ({"inputs": [lr, lr]}, "input 'lr' already exists in request"),
        ({"inputs": [lr, {**lr, "name": "extra"}]}, f"unexpected inference input 'extra' for model '{model}'"),
        ({"inputs": [lr], "outputs": [{"name": "mask"}]}, f"unexpected inference output 'mask' for model '{model}'"),
        ({"inputs": [lr], "outputs": [{"name": "sr"}, {"name": "sr"}]}, "output 'sr' already exists in request"),
        ({"inputs": [lr], "parameters": {"binary_data_output": "yes"}}, "parameter 'binary_data_output' must be a boolean"),
        ({"inputs": [lr], "outputs": [{"name": "sr", "parameters": {"binary_data": 1}}]}, "parameter 'binary_data' must be a boolean"),
        ({"inputs": [lr], "parameters": [1]}, "'parameters' must be an object"),
        ({"inputs": [lr], "id": 7}, "request 'id' must be a string"),
        ({"inputs": [{**lr, "parameters": {"binary_data_size": "12288"}}]}, "binary_data_size"),
    ]]
    for body, needle in cases:
        r = httpx.post(u, content=body)
        assert r.status_code == 400 and needle in r.json()["error"], r.text
    assert httpx.post(f"{limited.url}/v2/models/{model}/versions/7/infer", content=b"{}").status_code == 404


def test_queue_full_is_503_with_retry_after(start_server):
    s = start_server(TEXTSR_QUEUE_CAPACITY="4", TEXTSR_MAX_BATCH_SIZE="1", TEXTSR_MAX_QUEUE_DELAY_MS="0", TEXTSR_RECOGNITION="false")
    crops = [png_bytes(np.random.default_rng(i).integers(0, 256, (16, 64, 3), dtype=np.uint8)) for i in range(3)]
    with cf.ThreadPoolExecutor(48) as pool:
        rs = list(pool.map(lambda i: httpx.post(s.url + "/v1/upscale", files=[("file", ("c.png", c)) for c in crops], timeout=60), range(48)))
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503} and 503 in codes and 200 in codes
    full = next(r for r in rs if r.status_code == 503)
    assert full.headers["retry-after"] == "1" and full.json()["error"]["code"] == "queue_full"
    assert httpx.get(s.url + "/readyz").status_code == 200


def test_timeout_is_504(start_server):
    s = start_server(TEXTSR_REQUEST_TIMEOUT_S="0.001", TEXTSR_RECOGNITION="false", TEXTSR_MAX_QUEUE_DELAY_MS="50")
    err(httpx.post(s.url + "/v1/upscale", files={"file": ("x.png", CROP)}), 504, "timeout", "not served within")


def test_api_key(start_server):
    s = start_server(TEXTSR_API_KEY="s3cret", TEXTSR_RECOGNITION="false")
    u = s.url + "/v1/upscale"
    err(httpx.post(u, files={"file": ("x.png", CROP)}), 401, "unauthorized")
    err(httpx.post(u, files={"file": ("x.png", CROP)}, headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert httpx.post(u, files={"file": ("x.png", CROP)}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert httpx.get(s.url + "/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(s.url + "/healthz").status_code == 200 and httpx.get(s.url + "/readyz").status_code == 200


def test_api_key_is_compared_in_constant_time(model_dir, monkeypatch):
    """The README's "constant-time comparison": every key a client sends, as X-API-Key or Bearer, is checked by
    hmac.compare_digest (or secrets.compare_digest, the same function) against the configured key, never with ==."""
    import hmac
    import secrets

    from fastapi.testclient import TestClient

    from service.http.app import create_app
    from service.repository import ModelRepository, load_model
    from service.settings import Settings

    calls: list[set] = []
    constant_time = hmac.compare_digest

    def spy(a, b):
        calls.append({x.encode() if isinstance(x, str) else bytes(x) for x in (a, b)})
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setattr(secrets, "compare_digest", spy)
    model = load_model(sorted(model_dir.glob("*/manifest.json"))[0].parent, "cpu", "fp32", 0)
    app = create_app(Settings(recognition=False, api_key="s3cret"), ModelRepository([model]))
    with TestClient(app) as client:
        calls.clear()  # anything start-up compared
        assert client.get("/v1/models", headers={"X-API-Key": "s3crex"}).status_code == 401
        assert client.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.post("/v1/upscale", files={"file": ("x.png", CROP)}, headers={"X-API-Key": "s3cret"}).status_code == 200
    assert calls == [{b"s3crex", b"s3cret"}, {b"s3cret"}, {b"s3cret"}]


def test_recognition_off_is_a_clear_422(start_server):
    s = start_server(TEXTSR_RECOGNITION="false")
    err(httpx.post(s.url + "/v1/upscale", params={"recognize": "true"}, files={"file": ("x.png", CROP)}), 422, "invalid_option", "TEXTSR_RECOGNITION")


def test_swapped_model_file_stops_startup(model_dir, tmp_path):
    bad = tmp_path / "models"
    shutil.copytree(model_dir, bad)
    onnx_file = next(bad.glob("*/model.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    proc = subprocess.run(
        [sys.executable, "-m", "textsr", "serve", "--model-dir", str(bad), "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert proc.returncode == 2
    assert str(onnx_file) in proc.stderr and "sha256 mismatch" in proc.stderr


def test_sigterm_drains_accepted_requests(model_dir, tmp_path):
    from tests.service.conftest import ServerProcess

    s = ServerProcess(model_dir, tmp_path / "log", TEXTSR_RECOGNITION="false", TEXTSR_MAX_BATCH_SIZE="1", TEXTSR_MAX_QUEUE_DELAY_MS="0").wait_ready()
    crops = [png_bytes(np.random.default_rng(i).integers(0, 256, (16, 64, 3), dtype=np.uint8)) for i in range(6)]
    with cf.ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(httpx.post, s.url + "/v1/upscale", files=[("file", ("c.png", c)) for c in crops], timeout=60) for _ in range(12)]
        time.sleep(0.5)  # requests are in flight and queued
        code = s.stop()
        results = [f.result() for f in futures]
    assert code in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "accepted work finished" in (tmp_path / "log").read_text()
    assert all(r.status_code == 200 for r in results), [r.status_code for r in results]
    assert all(len(r.json()["results"]) == 6 for r in results)


def test_fp16_graph_serves_within_its_tolerance(model_dir, start_server):
    from core.manifest import read_manifest
    from tests.conftest import fp16_bound

    folder = sorted(model_dir.glob("*/manifest.json"))[0].parent
    manifest = read_manifest(folder)
    if "fp16" not in [g.precision for g in manifest.graphs]:
        pytest.skip("this model folder has no fp16 graph (the shipped default has one)")
    half = start_server(TEXTSR_PRECISION="fp16", TEXTSR_RECOGNITION="false")
    full = start_server(TEXTSR_RECOGNITION="false")
    assert httpx.get(half.url + "/v1/models").json()["models"][0]["precision"] == "fp16"
    x = np.random.default_rng(5).random((4, 3, 16, 64), dtype=np.float32)
    body = {"inputs": [{"name": "lr", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]}
    outs = []
    for s in (half, full):
        r = httpx.post(f"{s.url}/v2/models/{manifest.name}/infer", json=body, timeout=60)
        outs.append(np.asarray(r.json()["outputs"][0]["data"], np.float32))
    assert np.abs(outs[0] - outs[1]).max() <= fp16_bound(folder)  # twice the fp16 error its conversion recorded


def test_inflight_limit_refuses_before_reading_the_body(start_server):
    s = start_server(TEXTSR_MAX_INFLIGHT_REQUESTS="2", TEXTSR_MAX_BATCH_SIZE="1", TEXTSR_MAX_QUEUE_DELAY_MS="0", TEXTSR_RECOGNITION="false")
    crops = [png_bytes(np.random.default_rng(i).integers(0, 256, (16, 64, 3), dtype=np.uint8)) for i in range(4)]
    with cf.ThreadPoolExecutor(24) as pool:
        rs = list(pool.map(lambda i: httpx.post(s.url + "/v1/upscale", files=[("file", ("c.png", c)) for c in crops], timeout=60), range(24)))
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) > 0
    refused = next(r for r in rs if r.status_code == 503)
    assert refused.headers["retry-after"] == "1" and "in flight" in refused.json()["error"]["message"]
    assert httpx.get(s.url + "/readyz").status_code == 200
    metrics = httpx.get(s.url + "/metrics").text  # refusals are counted under the endpoint, not as "unmatched"
    assert f'textsr_requests_total{{endpoint="/v1/upscale",status="503"}} {float(codes.count(503))}' in metrics
    assert "textsr_requests_in_flight 0.0" in metrics  # every admitted request was answered
