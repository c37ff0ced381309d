"""textsr's inference service: a runtime on ONNX Runtime with dynamic batching, and an HTTP adapter on top.

Importing ``service`` gives the runtime (settings, errors, engine, batcher, images, pipeline,
recognizer, model repository, :class:`LocalPipeline`), which needs no web framework; the FastAPI
app is ``service.http.app.create_app``. Never imports paddle.
"""

from service.batcher import DynamicBatcher
from service.engine import OrtEngine
from service.errors import (
    EngineError,
    InvalidImage,
    InvalidOption,
    InvalidRequest,
    ModelLoadError,
    ModelNotFound,
    ModelNotReady,
    PayloadTooLarge,
    QueueFull,
    RequestTimeout,
    TextSRError,
    Unauthorized,
    UnsupportedMediaType,
)
from service.local import LocalPipeline
from service.pipeline import Pipeline
from service.repository import ModelRepository
from service.settings import Settings

__all__ = [
    "DynamicBatcher",
    "EngineError",
    "InvalidImage",
    "InvalidOption",
    "InvalidRequest",
    "LocalPipeline",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "ModelRepository",
    "OrtEngine",
    "PayloadTooLarge",
    "Pipeline",
    "QueueFull",
    "RequestTimeout",
    "Settings",
    "TextSRError",
    "Unauthorized",
    "UnsupportedMediaType",
]
