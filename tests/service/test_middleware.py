"""Each middleware on its own, on a tiny app without models; and error shapes chosen by the owning route."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.errors import InvalidRequest
from service.http.middleware import AdmissionControl, Authentication, ErrorEnvelope, MetricsAndAccessLog, RequestId
from service.http.protocols import V1Route, V2Route, install_error_handlers


def tiny_app(*middleware: tuple[type, dict]) -> FastAPI:
    """Routes of both protocols, on purpose under the "wrong" prefixes: the shape must follow the route class."""
    app = FastAPI()
    install_error_handlers(app)
    v1, v2 = APIRouter(route_class=V1Route), APIRouter(route_class=V2Route)

    @v1.get("/v2/own-api/crash")
    async def v1_crash() -> dict:
        raise RuntimeError("secret internals")

    @v1.post("/v2/own-api/fail")
    async def v1_fail() -> dict:
        raise InvalidRequest("bad tensor")

    @v1.get("/v2/own-api/{item}")
    async def v1_ok(item: str) -> dict:
        return {"item": item}

    @v2.post("/v1/kserve/fail")
    async def v2_fail() -> dict:
        raise InvalidRequest("bad tensor")

    @v2.get("/v1/kserve/crash")
    async def v2_crash() -> dict:
        raise RuntimeError("secret internals")

    @v1.get("/open")
    async def open_path() -> dict:
        return {"ok": True}

    app.include_router(v1)
    app.include_router(v2)
    for cls, kwargs in middleware:
        app.add_middleware(cls, **kwargs)
    return app


def test_error_shape_follows_the_route_class_not_the_url():
    with TestClient(tiny_app((RequestId, {}))) as c:
        r = c.post("/v2/own-api/fail")  # a v1 route under /v2
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "invalid_request" and r.json()["error"]["request_id"] == r.headers["x-request-id"]
        r = c.post("/v1/kserve/fail")  # a v2 route under /v1
        assert r.status_code == 400 and r.json() == {"error": "bad tensor"}
        r = c.get("/v1/kserve/fail")  # routing's 405 belongs to the route that matched the path
        assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed"}
        r = c.put("/v2/own-api/crash")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        r = c.get("/v2/nowhere")  # no owner: the app's own shape
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_request_id_is_kept_when_well_formed_and_made_otherwise():
    with TestClient(tiny_app((RequestId, {}))) as c:
        assert c.get("/open", headers={"X-Request-ID": "abc-1.2_3"}).headers["x-request-id"] == "abc-1.2_3"
        for bad in ("with space", "x" * 65, "semi;colon", "ü".encode()):
            made = c.get("/open", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert made != bad and len(made) == 32 and int(made, 16) >= 0
        a, b = (c.get("/open").headers["x-request-id"] for _ in range(2))
        assert a != b


def test_metrics_count_by_route_template_and_log_one_line(caplog):
    registry = CollectorRegistry()
    requests = Counter("req", "", ["endpoint", "status"], registry=registry)
    latency = Histogram("lat", "", ["endpoint"], registry=registry)
    app = tiny_app((Authentication, {"key": "k", "open_paths": {"/open"}, "open_prefixes": ()}),
                   (MetricsAndAccessLog, {"requests": requests, "latency": latency}), (RequestId, {}))
    with TestClient(app) as c, caplog.at_level(logging.INFO, logger="textsr.access"):
        r = c.get("/v2/own-api/a", headers={"X-API-Key": "k", "X-Request-ID": "rid-7"})
        c.get("/v2/own-api/b", headers={"X-API-Key": "k"})
        c.get("/v2/own-api/c")  # refused before routing: still labelled with the route that owns it
        c.get("/open")
        c.get("/nowhere", headers={"X-API-Key": "k"})
    assert r.status_code == 200 and r.headers["server-timing"].startswith("app;dur=")
    value = lambda name, **labels: registry.get_sample_value(name, labels)  # noqa: E731
    assert value("req_total", endpoint="/v2/own-api/{item}", status="200") == 2
    assert value("req_total", endpoint="/v2/own-api/{item}", status="401") == 1
    assert value("req_total", endpoint="/open", status="200") == 1
    assert value("req_total", endpoint="unmatched", status="404") == 1
    assert value("lat_count", endpoint="/v2/own-api/{item}") == 3
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "textsr.access"]
    assert len(lines) == 5 and lines[0].startswith("rid-7 GET /v2/own-api/a 200 ")


def test_error_envelope_hides_the_crash_in_the_owners_shape_and_keeps_serving(caplog):
    with TestClient(tiny_app((ErrorEnvelope, {}), (RequestId, {})), raise_server_exceptions=False) as c:
        with caplog.at_level(logging.ERROR, logger="textsr.app"):
            r1, r2 = c.get("/v2/own-api/crash"), c.get("/v1/kserve/crash")
        ok = c.get("/open")
    assert r1.status_code == 500 and r1.json()["error"] == {
        "code": "internal_error", "message": "internal server error", "request_id": r1.headers["x-request-id"]}
    assert r2.status_code == 500 and r2.json() == {"error": "internal server error"}
    assert "secret internals" not in r1.text + r2.text and "Traceback" not in r1.text + r2.text
    logged = [rec for rec in caplog.records if rec.name == "textsr.app"]
    assert len(logged) == 2 and r1.headers["x-request-id"] in logged[0].getMessage() and logged[0].exc_info
    assert ok.status_code == 200


def test_authentication_in_the_owners_shape():
    app = tiny_app((Authentication, {"key": "s3cret", "open_paths": {"/open"}, "open_prefixes": ("/v2/own-api/c",)}))
    with TestClient(app) as c:
        assert c.get("/open").status_code == 200
        assert c.get("/v2/own-api/x-free").status_code == 401
        assert c.get("/v2/own-api/c-is-open-by-prefix").status_code == 200
        r = c.post("/v1/kserve/fail", headers={"X-API-Key": "wrong"})
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong API key (X-API-Key or Authorization: Bearer)"}
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.get("/v2/own-api/x", headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200
        r = c.get("/v2/own-api/x", headers={"X-API-Key": "s3cret "})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_admission_control_refuses_work_beyond_the_limit_before_reading_and_counts_down():
    """Two work requests held inside the app: the third gets 503 with Retry-After; a GET passes; the gauge reads
    the requests in flight, and returns to 0 also after a handler fails."""
    registry = CollectorRegistry()
    gauge = Gauge("in_flight", "", registry=registry)
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(route_class=V2Route)
    entered, release = threading.Semaphore(0), threading.Event()

    @router.post("/work")
    async def work() -> dict:
        entered.release()
        await asyncio.get_running_loop().run_in_executor(None, release.wait)
        return {"done": True}

    @router.post("/boom")
    async def boom() -> dict:
        raise InvalidRequest("no")

    @router.get("/look")
    async def look() -> dict:
        return {"ok": True}

    app.include_router(router)
    app.add_middleware(AdmissionControl, limit=2, is_work=lambda scope: scope["method"] == "POST", gauge=gauge)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            held = [asyncio.create_task(c.post("/work")) for _ in range(2)]
            for _ in range(2):
                await asyncio.get_running_loop().run_in_executor(None, entered.acquire)
            assert registry.get_sample_value("in_flight") == 2
            refused = await c.post("/work", content=b"x" * 1000)
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json() == {"error": "2 requests in flight, the limit is 2; retry shortly"}
            assert (await c.get("/look")).status_code == 200
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert (await c.post("/boom")).status_code == 400
            assert registry.get_sample_value("in_flight") == 0

    asyncio.run(scenario())


def test_every_post_route_of_the_app_carries_work():
    """The premise of ``carries_work`` (admission control counts every POST)."""
    from service.http.app import carries_work, create_app
    from service.http.protocols import _routes
    from service.settings import Settings

    app = create_app(Settings(recognition=False))
    posts = {r.path for r in _routes(app.router.routes) if "POST" in getattr(r, "methods", ())}
    assert posts == {"/v1/upscale", "/v1/recognize", "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"}
    assert carries_work({"method": "POST"}) and not carries_work({"method": "GET"})


@pytest.mark.parametrize("path", ["/v1/models", "/v2/models/gestalt-tsrn-synth"])
def test_the_app_stacks_every_layer(path):
    """create_app wires all five layers: an id, a timing header, a 401 in the owner's shape, the metrics line."""
    from service.http.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(recognition=False, api_key="k"))) as c:
        r = c.get(path)
        assert r.status_code == 401 and len(r.headers["x-request-id"]) == 32 and "server-timing" in r.headers
        assert isinstance(r.json()["error"], dict if path.startswith("/v1") else str)
        metrics = c.get("/metrics", headers={"X-API-Key": "k"}).text
    template = "/v1/models" if path.startswith("/v1") else "/v2/models/{name}"
    assert f'textsr_requests_total{{endpoint="{template}",status="401"}} 1.0' in metrics
