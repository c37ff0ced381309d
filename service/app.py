"""The FastAPI app: routes and the app factory. Handlers only validate, call the pipeline, serialize."""

from __future__ import annotations

import base64
import hmac
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles

import textsr
from service import images
from service.bodies import decode_all, read_images
from service.errors import (
    InvalidOption,
    ModelNotReady,
    QueueFull,
    TextSRError,
    Unauthorized,
)
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.recognizer import LICENSE as REC_LICENSE
from service.recognizer import MODEL_FILE as REC_MODEL
from service.repository import ModelRepository
from service.schemas import CropOut, ErrorResponse, ModelOut, ModelsResponse, UpscaleJSON, UpscaleResponse
from service.settings import Settings
from service.v2 import v2_router

log = logging.getLogger("textsr.app")
access = logging.getLogger("textsr.access")

STATIC = Path(__file__).parent / "static"
PLAYGROUND = STATIC / "index.html"
OPEN_PATHS = {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/docs", "/openapi.json", "/docs/oauth2-redirect"}
"""Paths served without the API key: health probes, the playground page and the API docs."""
STATIC_PATH = "/static"
OPEN_PREFIXES = (STATIC_PATH + "/",)
"""Path prefixes served without the API key: the playground's static files (its example crops)."""
MODE_DEFAULT = "auto"
MODE_HELP = (
    f"auto (default): tile crops far wider than the model input (width/height above {images.AUTO_TILE_RATIO:g}x the "
    f"input's, {images.auto_tile_above((16, 64)):g} for 64x16) when the windows fit the per-image limit, resize the others; "
    "resize: to the model's input as PaddleOCR does; tile: overlapping windows, keeps the aspect of long lines"
)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ERRORS = {
    400: {"model": ErrorResponse, "description": "undecodable image or malformed body"},
    401: {"model": ErrorResponse, "description": "missing or wrong API key (when TEXTSR_API_KEY is set)"},
    404: {"model": ErrorResponse, "description": "no such model"},
    413: {"model": ErrorResponse, "description": "too many bytes, pixels or crops"},
    415: {"model": ErrorResponse, "description": "unsupported content type"},
    422: {"model": ErrorResponse, "description": "bad option"},
    500: {"model": ErrorResponse, "description": "inference failed (that request only)"},
    503: {"model": ErrorResponse, "description": "queue full (Retry-After) or not ready"},
    504: {"model": ErrorResponse, "description": "request timeout"},
}
IMAGE_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    "required": ["file"],
                }
            },
            "application/json": {"schema": UpscaleJSON.model_json_schema()},
        },
        "required": True,
    }
}


def _error(status: int, code: str, message: str, request: Request, headers: dict[str, str] | None = None) -> JSONResponse:
    rid = getattr(request.state, "request_id", None)
    if request.url.path.startswith("/v2"):  # KServe v2 / tritonclient: "error" is a string
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    body = {"error": {"code": code, "message": message, **({"request_id": rid} if rid else {})}}
    return JSONResponse(body, status_code=status, headers=headers)


def _is_work(request: Request) -> bool:
    """Requests that carry images or tensors: the ones admission control counts."""
    path = request.url.path
    return request.method == "POST" and (path.startswith("/v1/") or (path.startswith("/v2/models/") and path.endswith("/infer")))


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
        version=textsr.__version__,
        summary="Scene-text super-resolution (Text Telescope / Text Gestalt) on ONNX Runtime",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"], allow_headers=["*"])

    inflight = {"n": 0}
    metrics.in_flight.set_function(lambda: inflight["n"])

    @app.middleware("http")
    async def envelope(request: Request, call_next):
        rid = request.headers.get("x-request-id", "")
        request.state.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        start = time.perf_counter()
        key = settings.api_key.get_secret_value() if settings.api_key else None
        path = request.url.path
        if key and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), key.encode()):
                response = _error(401, Unauthorized.code, "missing or wrong API key (X-API-Key or Authorization: Bearer)", request)
                response.headers["WWW-Authenticate"] = "Bearer"
                return _finish(request, response, start)
        admitted = _is_work(request)
        if admitted:  # admission control before the body is read: overload costs a header parse, not a decode
            if inflight["n"] >= settings.max_inflight_requests:
                response = _error(503, QueueFull.code, f"{inflight['n']} requests in flight, the limit is {settings.max_inflight_requests}; retry shortly", request, {"Retry-After": "1"})
                return _finish(request, response, start)
            inflight["n"] += 1
        try:
            response = await call_next(request)
        except Exception:  # anything not handled below: a 500 without a stack trace, logged with the id
            log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, request.state.request_id)
            response = _error(500, "internal_error", "internal server error", request)
        finally:
            if admitted:
                inflight["n"] -= 1
        return _finish(request, response, start)

    def _endpoint(request: Request) -> str:
        """The route template of the request, also for requests refused before routing (401, 503)."""
        route = request.scope.get("route")
        if route is None and request.url.path.startswith(STATIC_PATH + "/"):  # the mount leaves no route in the scope
            return STATIC_PATH
        if route is None:
            route = next((r for r in app.router.routes if r.matches(request.scope)[0] is Match.FULL), None)
        return getattr(route, "path", "unmatched")

    def _finish(request: Request, response: Response, start: float) -> Response:
        endpoint = _endpoint(request)
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        elapsed = time.perf_counter() - start
        metrics.latency.labels(endpoint).observe(elapsed)
        response.headers["X-Request-ID"] = request.state.request_id
        # the server's own time for the request (W3C Server-Timing; the playground shows it)
        response.headers["Server-Timing"] = f"app;dur={1000 * elapsed:.1f}"
        access.info(
            "%s %s %s %d %.1fms", request.state.request_id, request.method, request.url.path,
            response.status_code, 1000 * elapsed,
        )
        return response

    @app.exception_handler(TextSRError)
    async def _domain_error(request: Request, exc: TextSRError) -> JSONResponse:
        if exc.status >= 500 and not isinstance(exc, (QueueFull, ModelNotReady)):  # backpressure is expected, not news
            log.warning("%s on %s (request %s): %s", exc.code, request.url.path, request.state.request_id, exc.message)
        return _error(exc.status, exc.code, exc.message, request, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            parts.append(f"{where}: {err['msg']}")
        return _error(422, InvalidOption.code, "; ".join(parts), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), request, getattr(exc, "headers", None))

    def pipeline(request: Request) -> Pipeline:
        return request.app.state.pipeline

    # -- /v1 -----------------------------------------------------------------------------
    @app.post(
        "/v1/upscale",
        response_model=UpscaleResponse,
        responses={**ERRORS, 200: {"content": {"image/png": {}}, "description": "JSON results, or the PNG itself for one file with Accept: image/png"}},
        openapi_extra=IMAGE_BODY,
        summary="Upscale text crops 2x (optionally recognize their text)",
    )
    async def upscale(
        request: Request,
        mode: Literal["auto", "resize", "tile"] = Query(MODE_DEFAULT, description=MODE_HELP),
        recognize: bool = Query(False, description="also return recognized text and confidence"),
        model: str | None = Query(None, description="model name (default: the server's default model)"),
    ):
        files, opts = await read_images(request, settings)
        mode, recognize = opts.get("mode", mode), opts.get("recognize", recognize)
        decoded = await run_in_threadpool(decode_all, files, settings.max_image_pixels)
        p = pipeline(request)
        results = await p.upscale(decoded, model, mode, recognize)
        pngs = await run_in_threadpool(lambda: [images.encode_png(r.sr, settings.png_compression) for r in results])
        if len(results) == 1 and "image/png" in request.headers.get("accept", ""):
            headers = {}
            if results[0].text is not None:
                headers = {"X-Text": results[0].text.encode("ascii", "backslashreplace").decode(), "X-Text-Confidence": f"{results[0].confidence:.4f}"}
            return Response(pngs[0], media_type="image/png", headers=headers)
        out = [
            CropOut(
                index=i, filename=files[i][0], input_width=r.input_size[0], input_height=r.input_size[1],
                width=r.sr.shape[1], height=r.sr.shape[0], mode=r.mode, image=base64.b64encode(png).decode(),
                text=r.text, confidence=r.confidence,
            )
            for i, (r, png) in enumerate(zip(results, pngs))
        ]
        return UpscaleResponse(model=p.model(model).name, mode=mode, results=out)

    @app.post(
        "/v1/recognize",
        response_model=UpscaleResponse,
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
        summary="Recognize the text of crops, on the SR image (default) or the raw crop",
    )
    async def recognize(
        request: Request,
        source: Literal["sr", "raw"] = Query("sr", description="sr: read the super-resolved image; raw: read the crop as sent"),
        mode: Literal["auto", "resize", "tile"] = Query(MODE_DEFAULT, description="for source=sr: " + MODE_HELP),
        model: str | None = Query(None, description="SR model for source=sr"),
    ):
        files, opts = await read_images(request, settings)
        source, mode = opts.get("source", source), opts.get("mode", mode)
        decoded = await run_in_threadpool(decode_all, files, settings.max_image_pixels)
        p = pipeline(request)
        if source == "sr":
            views = [r.sr for r in await p.upscale(decoded, model, mode, False)]
        else:
            views = decoded
        texts = await p.read_text(views)
        out = [
            CropOut(
                index=i, filename=files[i][0], input_width=img.shape[1], input_height=img.shape[0],
                width=v.shape[1], height=v.shape[0], text=t, confidence=c,
            )
            for i, (img, v, (t, c)) in enumerate(zip(decoded, views, texts))
        ]
        return UpscaleResponse(model=p.model(model).name if source == "sr" else "none", mode=source, results=out)

    @app.get("/v1/models", response_model=ModelsResponse, summary="Loaded models and the providers they run on")
    async def models(request: Request) -> ModelsResponse:
        p = pipeline(request)
        out = [
            ModelOut(
                name=m.name, algorithm=m.manifest.algorithm, backbone=m.manifest.backbone, precision=m.precision,
                providers=m.engine.providers, input_shape=m.manifest.input.shape, output_shape=m.manifest.output.shape,
                scale=m.manifest.scale, auto_tile_above=images.auto_tile_above(m.manifest.lr_size),
                sha256=m.manifest.graph(m.precision).sha256, default=m.name == p.repository.default,
            )
            for m in p.repository.models.values()
        ]
        rec = None
        if p.recognizer is not None:
            rec = {"model": REC_MODEL, "license": REC_LICENSE, "providers": ",".join(p.recognizer.engine.providers)}
        return ModelsResponse(models=out, recognizer=rec)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(PLAYGROUND.read_text())

    # the playground's example crops (static/examples/, made by scripts/make_examples.py), no API key
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC), name="static")

    # -- health and metrics --------------------------------------------------------------
    @app.get("/healthz", summary="Liveness: the process serves HTTP", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz", summary="Readiness: models loaded and warmed up",
        responses={200: {"content": {"application/json": {"example": {"status": "ready", "models": ["gestalt-tsrn-synth"]}}}}, 503: {"model": ErrorResponse}},
    )
    async def readyz(request: Request):
        p = getattr(request.app.state, "pipeline", None)
        if p is None or not p.ready:
            raise ModelNotReady("shutting down" if p is not None and p.draining else "models are loading")
        return {"status": "ready", "models": sorted(p.batchers)}

    @app.get(
        "/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {"example": 'textsr_requests_total{endpoint="/v1/upscale",status="200"} 42.0'}}}},
    )
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.include_router(v2_router(settings))

    return app
