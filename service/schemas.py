"""Request and response bodies of the /v1 API (the OpenAPI schema is generated from these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UpscaleJSON(BaseModel):
    """JSON form of /v1/upscale and /v1/recognize: base64 images (a data: URL prefix is allowed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"images": ["iVBORw0KGgo..."], "mode": "resize", "recognize": True}]})
    images: list[str] = Field(min_length=1, description="base64-encoded image files (PNG, JPEG, WebP, ...)")
    mode: Literal["resize", "tile"] | None = Field(None, description="resize (PaddleOCR's way) or tile (keeps aspect)")
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
    image: str | None = Field(None, description="the upscaled image, base64 PNG")
    text: str | None = Field(None, description="recognized text (recognize=true or /v1/recognize)")
    confidence: float | None = Field(None, description="mean per-character probability of the text, 0..1")


class UpscaleResponse(BaseModel):
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
    sha256: str
    default: bool


class ModelsResponse(BaseModel):
    models: list[ModelOut]
    recognizer: dict[str, str] | None


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
