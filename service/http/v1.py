"""The /v1 API: upscale, recognize, list models. Handlers only translate between HTTP and the pipeline.

Each handler reads the images (``service.http.bodies``), decodes them off the event loop, awaits the
pipeline, and serializes; errors are the pipeline's ``TextSRError``\\s, rendered in the v1 shape by the
route class (:class:`service.http.protocols.V1Route`).
"""

from __future__ import annotations

import base64
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from service import images
from service.http.bodies import decode_all, read_images
from service.http.protocols import V1Route, error_docs
from service.http.schemas import CropOut, ErrorResponse, ModelOut, ModelsResponse, UpscaleJSON, UpscaleResponse
from service.pipeline import Pipeline
from service.recognizer import LICENSE as REC_LICENSE
from service.recognizer import MODEL_FILE as REC_MODEL
from service.settings import Settings

MODE_DEFAULT = "auto"
MODE_HELP = (
    f"auto (default): tile crops far wider than the model input (width/height above {images.AUTO_TILE_RATIO:g}x the "
    f"input's, {images.auto_tile_above((16, 64)):g} for 64x16) when the windows fit the per-image limit, resize the others; "
    "resize: to the model's input as PaddleOCR does; tile: overlapping windows, keeps the aspect of long lines"
)
ERRORS = error_docs(ErrorResponse, {
    400: "undecodable image or malformed body",
    401: "missing or wrong API key (when TEXTSR_API_KEY is set)",
    404: "no such model",
    413: "too many bytes, pixels or crops",
    415: "unsupported content type",
    422: "bad option",
    500: "inference failed (that request only)",
    503: "queue full (Retry-After) or not ready",
    504: "request timeout",
})
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


def pipeline(request: Request) -> Pipeline:
    return request.app.state.pipeline


def v1_router(settings: Settings) -> APIRouter:
    """The /v1 routes, bound to the app's settings; the pipeline comes from ``request.app.state``."""
    router = APIRouter(prefix="/v1", route_class=V1Route)

    @router.post(
        "/upscale",
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

    @router.post(
        "/recognize",
        response_model=UpscaleResponse,
        responses=ERRORS,
        openapi_extra=IMAGE_BODY,
        summary="Recognize the text of crops, on the SR image (default) or the raw crop",
        description="Which source reads better depends on the SR model: `GET /v1/models` reports each model's"
        " `test_accuracy` (this recognizer on the model's test set: raw crop, bicubic, SR, sharp original). For the"
        " shipped default the SR reads better than the raw crop (README, \"Recognized text\").",
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

    @router.get("/models", response_model=ModelsResponse, responses={401: ERRORS[401]}, summary="Loaded models and the providers they run on")
    async def models(request: Request) -> ModelsResponse:
        p = pipeline(request)
        out = [
            ModelOut(
                name=m.name, algorithm=m.manifest.algorithm, backbone=m.manifest.backbone, precision=m.precision,
                providers=m.engine.providers, input_shape=m.manifest.input.shape, output_shape=m.manifest.output.shape,
                scale=m.manifest.scale, auto_tile_above=images.auto_tile_above(m.manifest.lr_size),
                sha256=m.manifest.graph(m.precision).sha256, default=m.name == p.repository.default,
                text_prior=m.manifest.text_prior.recognizer if m.manifest.text_prior else None, test_accuracy=m.accuracy,
            )
            for m in p.repository.models.values()
        ]
        rec = None
        if p.recognizer is not None:
            rec = {"model": REC_MODEL, "license": REC_LICENSE, "providers": ",".join(p.recognizer.engine.providers)}
        return ModelsResponse(models=out, recognizer=rec)

    return router
