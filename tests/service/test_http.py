"""The service over real HTTP (uvicorn in a child process): endpoints, batching, errors, KServe v2."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import re

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.conftest import png_bytes, render_word


def metric(text: str, name: str, **labels: str) -> float:
    sel = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(sel) + r"[^}]*\}" if sel else r"(\{[^}]*\})?") + r" ([0-9.e+-]+)"
    return sum(float(m) for m in re.findall(pattern, text))


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def crop() -> bytes:
    return png_bytes(render_word("street", 16, 64))


def test_health_and_models(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").status_code == 200
    models = httpx.get(server.url + "/v1/models").json()
    m = models["models"][0]
    assert m["providers"] == ["CPUExecutionProvider"] and m["input_shape"] == [-1, 3, 16, 64] and m["default"]
    assert models["recognizer"]["model"] == "PP-OCRv6_rec_small.onnx"
    text = httpx.get(server.url + "/metrics").text
    assert 'provider="CPUExecutionProvider"' in text and "textsr_model_info" in text


def test_models_report_the_test_accuracy_of_their_own_graph(server, model_dir, tmp_path):
    """/v1/models reports the recognizer's accuracy on a model's test set (raw, bicubic, SR, HR) from its metrics.json,
    and only when that file was measured on the folder's graph."""
    import json
    import shutil

    from core.manifest import read_manifest
    from service.repository import measured_accuracy

    served = {m["name"]: m for m in httpx.get(server.url + "/v1/models").json()["models"]}
    for folder in sorted(p.parent for p in model_dir.glob("*/manifest.json")):
        manifest = read_manifest(folder)
        metrics = folder / "metrics.json"
        want = json.loads(metrics.read_text())["average"]["accuracy"] if metrics.is_file() else None
        assert served[manifest.name]["test_accuracy"] == want
    folder = tmp_path / "m"
    shutil.copytree(next(model_dir.glob("*/manifest.json")).parent, folder)
    manifest = read_manifest(folder)
    record = {"model": {"sha256": manifest.graph("fp32").sha256}, "average": {"accuracy": {"raw": 0.5, "sr": 0.6}}}
    (folder / "metrics.json").write_text(json.dumps(record))
    assert measured_accuracy(folder, manifest) == {"raw": 0.5, "sr": 0.6}
    record["model"]["sha256"] = "0" * 64  # measured on another graph: not this model's figure
    (folder / "metrics.json").write_text(json.dumps(record))
    assert measured_accuracy(folder, manifest) is None
    (folder / "metrics.json").write_text("{}")
    assert measured_accuracy(folder, manifest) is None
    (folder / "metrics.json").unlink()
    assert measured_accuracy(folder, manifest) is None


def test_upscale_multipart_json_and_png(server, crop):
    r = httpx.post(server.url + "/v1/upscale", files=[("file", ("a.png", crop)), ("file", ("b.png", crop))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert [x["filename"] for x in body["results"]] == ["a.png", "b.png"]
    first = decode_png(base64.b64decode(body["results"][0]["image"]))
    assert first.shape == (32, 128, 3) and body["results"][0]["width"] == 128
    r = httpx.post(server.url + "/v1/upscale", json={"images": [base64.b64encode(crop).decode()]})
    assert r.status_code == 200 and np.array_equal(decode_png(base64.b64decode(r.json()["results"][0]["image"])), first)
    r = httpx.post(server.url + "/v1/upscale", files={"file": ("a.png", crop)}, headers={"Accept": "image/png"})
    assert r.headers["content-type"] == "image/png" and np.array_equal(decode_png(r.content), first)
    assert r.headers["x-request-id"]


def test_any_input_size_is_resized_like_paddleocr(server):
    for h, w in ((7, 300), (120, 90), (1, 1)):
        data = png_bytes(np.full((h, w, 3), 200, np.uint8))
        r = httpx.post(server.url + "/v1/upscale", params={"mode": "resize"}, files={"file": ("x.png", data)})
        assert r.status_code == 200, r.text
        res = r.json()["results"][0]
        assert (res["input_width"], res["input_height"], res["width"], res["height"]) == (w, h, 128, 32)


def test_tile_mode_keeps_the_aspect(server):
    line = png_bytes(np.concatenate([render_word("hello", 16, 64)] * 7, axis=1)[:, :400])
    r = httpx.post(server.url + "/v1/upscale", params={"mode": "tile"}, files={"file": ("line.png", line)})
    assert r.status_code == 200, r.text
    out = decode_png(base64.b64decode(r.json()["results"][0]["image"]))
    assert out.shape == (32, 800, 3)


def test_recognition_reads_a_rendered_word(server):
    word = png_bytes(render_word("GARDEN", 32, 128))
    r = httpx.post(server.url + "/v1/recognize", params={"source": "raw"}, files={"file": ("w.png", word)})
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["text"] == "GARDEN" and res["confidence"] > 0.8
    r = httpx.post(server.url + "/v1/upscale", params={"recognize": "true"}, files={"file": ("w.png", word)})
    assert r.json()["results"][0]["text"] is not None


def test_concurrent_clients_are_batched_and_results_do_not_change(server):
    rng = np.random.default_rng(1)
    crops = [png_bytes(rng.integers(0, 256, (16, 64, 3), dtype=np.uint8)) for _ in range(24)]
    alone = [httpx.post(server.url + "/v1/upscale", files={"file": ("c.png", c)}, headers={"Accept": "image/png"}).content for c in crops[:4]]
    before = httpx.get(server.url + "/metrics").text
    with cf.ThreadPoolExecutor(24) as pool:
        together = list(pool.map(lambda c: httpx.post(server.url + "/v1/upscale", files={"file": ("c.png", c)}, headers={"Accept": "image/png"}, timeout=60), crops))
    after = httpx.get(server.url + "/metrics").text
    assert all(r.status_code == 200 for r in together)
    for a, b in zip(alone, together[:4]):
        assert np.abs(decode_png(a).astype(int) - decode_png(b.content).astype(int)).max() == 0
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    runs = metric(after, "textsr_batch_size_count", model=model) - metric(before, "textsr_batch_size_count", model=model)
    crops_run = metric(after, "textsr_batch_size_sum", model=model) - metric(before, "textsr_batch_size_sum", model=model)
    assert crops_run == 24 and runs < 24  # some batch held more than one crop
    assert metric(after, "textsr_requests_total", endpoint="/v1/upscale", status="200") >= 24


def test_batched_tensor_equals_single_within_1e5(server):
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    x = np.random.default_rng(2).random((16, 3, 16, 64), dtype=np.float32)

    def infer(batch):
        body = {"inputs": [{"name": "lr", "shape": list(batch.shape), "datatype": "FP32", "data": batch.ravel().tolist()}]}
        r = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        return np.asarray(out["data"], np.float32).reshape(out["shape"])

    full = infer(x)
    for i in (0, 7, 15):
        assert np.abs(infer(x[i : i + 1])[0] - full[i]).max() <= 1e-5


def test_tritonclient_round_trip(server):
    tc = pytest.importorskip("tritonclient.http")
    client = tc.InferenceServerClient(server.url.removeprefix("http://"))
    model = httpx.get(server.url + "/v1/models").json()["models"][0]["name"]
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(model)
    meta = client.get_model_metadata(model)
    assert meta["inputs"][0]["name"] == "lr" and meta["outputs"][0]["shape"] == [-1, 3, 32, 128]
    assert client.get_model_config(model)["input"][0]["data_type"] == "TYPE_FP32"
    x = np.random.default_rng(3).random((3, 3, 16, 64), dtype=np.float32)
    results = []
    for binary in (True, False):
        inp = tc.InferInput("lr", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        out = tc.InferRequestedOutput("sr", binary_data=binary)
        res = client.infer(model, [inp], outputs=[out], request_id="abc")
        assert res.get_response()["id"] == "abc"
        results.append(res.as_numpy("sr"))
    inp = tc.InferInput("lr", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    results.append(client.infer(model, [inp], request_compression_algorithm="gzip").as_numpy("sr"))  # all defaults: binary
    assert results[0].shape == (3, 3, 32, 128)
    for other in results[1:]:
        assert np.abs(other - results[0]).max() <= 1e-6
    with pytest.raises(tc.InferenceServerException, match="no-such-model"):
        client.get_model_metadata("no-such-model")


def test_openapi_has_examples_for_every_endpoint(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    text_of = lambda obj: str(obj)  # noqa: E731
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            blob = text_of(op) + "".join(text_of(schemas.get(ref.split("/")[-1], {})) for ref in re.findall(r"#/components/schemas/(\w+)", text_of(op)))
            assert "example" in blob, f"{method.upper()} {path} has no example"


def test_auto_is_the_default_mode(server):
    """Without a mode, a long line is tiled (aspect kept, 2x) and a word-sized crop resized; /v1/recognize reads the
    long line through tiles too; /v1/models states the rule's threshold."""
    import cv2

    from tests.conftest import DATA

    line, word = (DATA / "line.png").read_bytes(), (DATA / "word.png").read_bytes()
    body = httpx.post(server.url + "/v1/upscale", files=[("file", ("line.png", line)), ("file", ("word.png", word))], timeout=60).json()
    assert body["mode"] == "auto"
    long, short = body["results"]
    assert long["mode"] == "tile" and long["height"] == 32
    assert abs(long["width"] / 32 - long["input_width"] / long["input_height"]) < 0.1  # the line's aspect, kept
    assert short["mode"] == "resize" and (short["width"], short["height"]) == (128, 32)
    png = cv2.imdecode(np.frombuffer(base64.b64decode(long["image"]), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[:2] == (32, long["width"])
    tiled = httpx.post(server.url + "/v1/recognize", files={"file": ("line.png", line)}, params={"mode": "tile"}, timeout=60).json()
    auto = httpx.post(server.url + "/v1/recognize", files={"file": ("line.png", line)}, timeout=60).json()
    assert auto["results"][0]["text"] == tiled["results"][0]["text"] and len(auto["results"][0]["text"]) > 10
    assert httpx.get(server.url + "/v1/models").json()["models"][0]["auto_tile_above"] == 6.0
