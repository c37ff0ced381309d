"""Request and response bodies of the /v1 API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UpscaleJSON(BaseModel):
    """JSON form of /v1/upscale and /v1/recognize: base64 images (a data: URL prefix is allowed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"images": ["iVBORw0KGgo..."], "mode": "resize", "recognize": True}]})
    images: list[str] = Field(min_length=1, description="base64-encoded image files (PNG, JPEG, WebP, ...)")
    mode: Literal["auto", "resize", "tile"] | None = Field(None, description="auto (default: tile far wider crops, resize the others), resize (PaddleOCR's way) or tile (keeps aspect)")
    recognize: bool | None = Field(None, description="also return the recognized text")
    source: Literal["sr", "raw"] | None = Field(None, description="/v1/recognize only: read the SR image or the raw crop")


class CropOut(BaseModel):
    """One image's result."""

    index: int = Field(description="position of the image in the request")
    filename: str | None = Field(None, description="multipart filename, if any")
    input_width: int
    input_height: int
    width: int = Field(description="width of the returned image")
    height: int = Field(description="height of the returned image")
    mode: str | None = Field(None, description="how this image went through the model: resize or tile (mode=auto decides per image)")
    image: str | None = Field(None, description="the upscaled image, base64 PNG")
    text: str | None = Field(None, description="recognized text (recognize=true or /v1/recognize)")
    confidence: float | None = Field(None, description="mean per-character probability of the text, 0..1")


class UpscaleResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "model": "gestalt-tsrn-synth", "mode": "auto",
        "results": [{"index": 0, "filename": "word.png", "input_width": 64, "input_height": 16, "width": 128, "height": 32, "mode": "resize",
                     "image": "iVBORw0KGgoAAAANSUhEUgAAAIAAAAAg...", "text": "BODIES", "confidence": 0.97}],
    }]})
    model: str
    mode: str
    results: list[CropOut]


class ModelOut(BaseModel):
    name: str
    algorithm: str
    backbone: str
    precision: str
    providers: list[str] = Field(description="execution providers the ONNX Runtime session actually uses")
    input_shape: list[int]
    output_shape: list[int]
    scale: int
    auto_tile_above: float = Field(description="mode=auto tiles crops whose width/height is above this (1.5x the input's)")
    sha256: str
    default: bool
    text_prior: str | None = Field(
        default=None, description="for a model with a text prior: the recognizer whose reading of each crop it takes as a second input"
    )
    test_accuracy: dict[str, float] | None = Field(
        default=None,
        description="the service recognizer's accuracy on the model's own test set (its metrics.json, measured on this"
        " folder's fp32 graph) reading the raw crop, bicubic, the SR and the sharp original: which /v1/recognize source"
        " reads better for this model",
    )


class ModelsResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "models": [{"name": "gestalt-tsrn-synth", "algorithm": "Gestalt", "backbone": "TSRN", "precision": "fp32",
                    "providers": ["CPUExecutionProvider"], "input_shape": [-1, 3, 16, 64], "output_shape": [-1, 3, 32, 128],
                    "scale": 2, "sha256": "9f2c...", "default": True,
                    "test_accuracy": {"raw": 0.5625, "bicubic": 0.5592, "sr": 0.5833, "hr": 0.9867}}],
        "recognizer": {"model": "PP-OCRv6_rec_small.onnx", "license": "Apache-2.0", "providers": "CPUExecutionProvider"},
    }]})
    models: list[ModelOut]
    recognizer: dict[str, str] | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "error": {"code": "invalid_image", "message": "file[0] (x.png): not a decodable image (PNG, JPEG, WebP, GIF, BMP or TIFF expected)",
                  "request_id": "3a405a41bf7b4b289ce588b3096e1604"},
    }]})
    error: ErrorBody
