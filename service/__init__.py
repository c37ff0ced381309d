"""textsr's inference service: FastAPI on ONNX Runtime with dynamic batching. Never imports paddle."""

from service.app import create_app
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
from service.pipeline import Pipeline
from service.repository import ModelRepository
from service.settings import Settings

__all__ = [
    "DynamicBatcher",
    "EngineError",
    "InvalidImage",
    "InvalidOption",
    "InvalidRequest",
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
    "create_app",
]
