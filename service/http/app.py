"""The app factory: wires the runtime (settings, model repository, pipeline, metrics) to the HTTP routers,
the middleware stack and the error handlers. No request logic lives here."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

import core
from service.http.middleware import AdmissionControl, Authentication, ErrorEnvelope, MetricsAndAccessLog, RequestId
from service.http.ops import STATIC, ops_router
from service.http.protocols import install_error_handlers
from service.http.v1 import v1_router
from service.http.v2 import v2_router
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.repository import ModelRepository
from service.settings import Settings

log = logging.getLogger("textsr.app")

OPEN_PATHS = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
"""Paths served without the API key: health probes, the playground page and the API docs."""
STATIC_PATH = "/static"
OPEN_PREFIXES = (STATIC_PATH + "/",)
"""Path prefixes served without the API key: the playground's static files (its example crops)."""


def carries_work(scope: Scope) -> bool:
    """Every POST route of this app carries images or tensors (/v1/upscale, /v1/recognize, v2 infer): those are
    the requests admission control counts. ``tests/service/test_middleware.py`` checks the premise."""
    return scope["method"] == "POST"


def create_app(settings: Settings | None = None, repository: ModelRepository | None = None) -> FastAPI:
    """Build the app. ``repository`` may be injected (tests); otherwise models load from settings."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        repo = repository or ModelRepository.load(
            settings.model_dir, settings.providers, settings.precision, settings.intra_op_threads, settings.default_model
        )
        pipeline = Pipeline(settings, repo, metrics)
        app.state.pipeline = pipeline
        await pipeline.start()
        yield
        drained = await pipeline.close()
        log.info("shutdown: accepted work %s", "finished" if drained else "cut off by the drain timeout")

    app = FastAPI(
        title="textsr",
        version=core.__version__,
        summary="Scene-text super-resolution (Text Telescope / Text Gestalt) on ONNX Runtime",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)

    # add_middleware puts each new layer outside the previous ones: listed here from the inside out
    app.add_middleware(AdmissionControl, limit=settings.max_inflight_requests, is_work=carries_work, gauge=metrics.in_flight)
    if settings.api_key:
        app.add_middleware(Authentication, key=settings.api_key.get_secret_value(), open_paths=OPEN_PATHS, open_prefixes=OPEN_PREFIXES)
    if settings.cors_origins:  # outside authentication: preflights carry no key, and refusals carry CORS headers
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"])
    app.add_middleware(ErrorEnvelope)
    app.add_middleware(MetricsAndAccessLog, requests=metrics.requests, latency=metrics.latency)
    app.add_middleware(RequestId)

    app.include_router(v1_router(settings))
    app.include_router(v2_router(settings))
    app.include_router(ops_router())
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="static")
    return app
