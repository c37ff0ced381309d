"""Routes for operators and browsers: liveness, readiness, Prometheus metrics, and the playground page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from service.errors import ModelNotReady
from service.http.protocols import V1Route
from service.http.schemas import ErrorResponse

STATIC = Path(__file__).parent / "static"
"""The playground's page and example crops (``static/examples/``, made by ``scripts/make_examples.py``)."""
PLAYGROUND = STATIC / "index.html"


def ops_router() -> APIRouter:
    router = APIRouter(route_class=V1Route)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground() -> HTMLResponse:
        return HTMLResponse(PLAYGROUND.read_text())

    @router.get("/healthz", summary="Liveness: the process serves HTTP", responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz", summary="Readiness: models loaded and warmed up",
        responses={200: {"content": {"application/json": {"example": {"status": "ready", "models": ["gestalt-tsrn-synth"]}}}}, 503: {"model": ErrorResponse}},
    )
    async def readyz(request: Request):
        p = getattr(request.app.state, "pipeline", None)
        if p is None or not p.ready:
            raise ModelNotReady("shutting down" if p is not None and p.draining else "models are loading")
        return {"status": "ready", "models": sorted(p.batchers)}

    @router.get(
        "/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
        responses={200: {"content": {"text/plain": {"example": 'textsr_requests_total{endpoint="/v1/upscale",status="200"} 42.0'}}}},
    )
    async def prometheus(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return router
