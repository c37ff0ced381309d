r"""KServe v2 / Open Inference Protocol endpoints (Triton-compatible), as one router.

Endpoints only translate: parse the body (``service.kserve``), check it against the model's
manifest (``service.kserve.check_infer_request``), run it through the model's batcher, serialize.
Errors are ``{"error": "<message>"}`` as the protocol specifies: the routes are
:class:`service.http.protocols.V2Route`\s, whose protocol renders every error they own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

import core
from service import kserve
from service.errors import ModelNotFound
from service.http.bodies import read_body
from service.http.protocols import V2Route, error_docs
from service.repository import LoadedModel
from service.settings import Settings

VERSIONS = ["1"]


class V2Error(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"error": "model 'x' is not loaded; loaded models: ['gestalt-tsrn-synth']"}]})
    error: str


class V2Tensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class V2ModelMetadata(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "name": "gestalt-tsrn-synth", "versions": ["1"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "lr", "datatype": "FP32", "shape": [-1, 3, 16, 64]}],
        "outputs": [{"name": "sr", "datatype": "FP32", "shape": [-1, 3, 32, 128]}],
    }]})
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2Tensor]
    outputs: list[V2Tensor]


class V2ServerMetadata(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "textsr", "version": "0.1.0", "extensions": ["binary_tensor_data"]}]})
    name: str
    version: str
    extensions: list[str]


EMPTY = {"content": {"text/plain": {"example": ""}}, "description": "empty body"}
NOT_FOUND = error_docs(V2Error, {404: "no such model or version"})
NOT_READY = {400: {**EMPTY, "description": "not ready (Triton answers 400)"}}
INFER_ERRORS = error_docs(V2Error, {
    400: "malformed request or tensor",
    404: "no such model or version",
    413: "body or batch too large",
    415: "unsupported Content-Encoding",
    503: "queue full (Retry-After) or not ready",
    504: "request timeout",
})
INFER_OK = {
    200: {
        "description": "JSON outputs, or JSON header + binary tensors (Inference-Header-Content-Length)",
        "content": {
            "application/json": {"example": {"model_name": "gestalt-tsrn-synth", "model_version": "1", "outputs": [
                {"name": "sr", "datatype": "FP32", "shape": [1, 3, 32, 128], "data": [0.5, 0.49, "..."]}]}},
            "application/octet-stream": {},
        },
    }
}
CONFIG_OK = {200: {"content": {"application/json": {"example": {
    "name": "gestalt-tsrn-synth", "platform": "onnxruntime_onnx", "max_batch_size": 64,
    "input": [{"name": "lr", "data_type": "TYPE_FP32", "dims": [3, 16, 64]}],
    "output": [{"name": "sr", "data_type": "TYPE_FP32", "dims": [3, 32, 128]}],
}}}}}
INFER_BODY = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {"inputs": [{"name": "lr", "shape": [1, 3, 16, 64], "datatype": "FP32", "data": [0.5] * 8}]},
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "required": True,
    }
}


def _empty(status: int) -> Response:
    return Response(status_code=status, media_type="text/plain")


def v2_router(settings: Settings) -> APIRouter:
    """The /v2 routes, bound to the app's settings; the pipeline comes from ``request.app.state``."""
    router = APIRouter(prefix="/v2", tags=["KServe v2"], route_class=V2Route)

    def model(request: Request, name: str, version: str | None) -> LoadedModel:
        if version is not None and version not in VERSIONS:
            raise ModelNotFound(f"model {name!r} has no version {version!r}; versions: {VERSIONS}")
        return request.app.state.pipeline.model(name)

    def ready(request: Request) -> bool:
        p = getattr(request.app.state, "pipeline", None)
        return p is not None and p.ready

    def metadata(m: LoadedModel) -> V2ModelMetadata:
        spec = m.manifest
        return V2ModelMetadata(
            name=m.name, versions=VERSIONS, platform="onnxruntime_onnx",
            inputs=[V2Tensor(name=spec.input.name, datatype="FP32", shape=spec.input.shape)],
            outputs=[V2Tensor(name=spec.output.name, datatype="FP32", shape=spec.output.shape)],
        )

    async def infer(request: Request, m: LoadedModel) -> Response:
        raw = await read_body(request, settings.max_body_bytes)
        body = await run_in_threadpool(kserve.decompress, raw, request.headers.get("content-encoding"), settings.max_inflated_bytes)
        req = await run_in_threadpool(kserve.parse_infer_request, body, request.headers.get(kserve.HEADER_LENGTH))
        x = await run_in_threadpool(kserve.check_infer_request, req, m.name, m.manifest)
        y = await request.app.state.pipeline.infer(m.name, x)
        payload, headers = await run_in_threadpool(kserve.build_infer_response, m.name, VERSIONS[0], req, {m.manifest.output.name: y})
        return Response(payload, headers=headers)

    @router.get("", response_model=V2ServerMetadata, summary="Server metadata")
    async def server_metadata() -> V2ServerMetadata:
        return V2ServerMetadata(name="textsr", version=core.__version__, extensions=["binary_tensor_data", "model_configuration"])

    @router.get("/health/live", summary="Liveness", responses={200: EMPTY}, response_class=Response)
    async def live() -> Response:
        return _empty(200)

    @router.get("/health/ready", summary="Readiness (400 when not ready, as Triton)", responses={200: EMPTY, **NOT_READY}, response_class=Response)
    async def server_ready(request: Request) -> Response:
        return _empty(200 if ready(request) else 400)

    @router.get("/models/{name}", response_model=V2ModelMetadata, responses=NOT_FOUND, summary="Model metadata")
    async def model_metadata(request: Request, name: str) -> V2ModelMetadata:
        return metadata(model(request, name, None))

    @router.get("/models/{name}/versions/{version}", response_model=V2ModelMetadata, responses=NOT_FOUND, summary="Model metadata (versioned)")
    async def model_metadata_versioned(request: Request, name: str, version: str) -> V2ModelMetadata:
        return metadata(model(request, name, version))

    @router.get("/models/{name}/ready", responses={200: EMPTY, **NOT_READY, **NOT_FOUND}, response_class=Response, summary="Model readiness")
    async def model_ready(request: Request, name: str) -> Response:
        model(request, name, None)
        return _empty(200 if ready(request) else 400)

    @router.get("/models/{name}/versions/{version}/ready", responses={200: EMPTY, **NOT_READY, **NOT_FOUND}, response_class=Response, summary="Model readiness (versioned)")
    async def model_ready_versioned(request: Request, name: str, version: str) -> Response:
        model(request, name, version)
        return _empty(200 if ready(request) else 400)

    @router.get("/models/{name}/config", responses={**CONFIG_OK, **NOT_FOUND}, summary="Triton model configuration")
    async def model_config(request: Request, name: str) -> dict[str, Any]:
        m = model(request, name, None)
        return {
            "name": m.name,
            "platform": "onnxruntime_onnx",
            "max_batch_size": settings.max_crops_per_request,
            "input": [{"name": m.manifest.input.name, "data_type": "TYPE_FP32", "dims": m.manifest.input.shape[1:]}],
            "output": [{"name": m.manifest.output.name, "data_type": "TYPE_FP32", "dims": m.manifest.output.shape[1:]}],
            "dynamic_batching": {
                "max_queue_delay_microseconds": int(settings.max_queue_delay_ms * 1000),
                "default_queue_policy": {"max_queue_size": settings.queue_capacity},
            },
        }

    @router.post("/models/{name}/infer", responses={**INFER_OK, **INFER_ERRORS}, openapi_extra=INFER_BODY, response_class=Response, summary="Inference (JSON or binary tensors)")
    async def model_infer(request: Request, name: str) -> Response:
        return await infer(request, model(request, name, None))

    @router.post("/models/{name}/versions/{version}/infer", responses={**INFER_OK, **INFER_ERRORS}, openapi_extra=INFER_BODY, response_class=Response, summary="Inference (versioned)")
    async def model_infer_versioned(request: Request, name: str, version: str) -> Response:
        return await infer(request, model(request, name, version))

    return router
