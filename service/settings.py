"""All service settings, read once from ``TEXTSR_*`` environment variables (one pydantic-settings class)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


class Settings(BaseSettings):
    """Service configuration. Every field is ``TEXTSR_<NAME>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="TEXTSR_", extra="ignore", frozen=True)

    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="folder of model folders (each: model.onnx + manifest.json)")
    default_model: str | None = Field(None, description="model used by /v1 endpoints; default: the only or first model")
    host: str = Field("127.0.0.1", description="address to bind")
    port: int = Field(8000, ge=0, le=65535, description="port to bind")
    providers: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when available, else CPU")
    precision: Literal["fp32", "fp16"] = Field("fp32", description="which graph of the manifest to run")
    intra_op_threads: int = Field(0, ge=0, description="ONNX Runtime intra-op threads; 0 = one per CPU this process may use (affinity and cgroup quota)")
    max_batch_size: int = Field(32, ge=1, le=1024, description="largest batch one inference run takes (and the warm-up batch at start-up)")
    max_queue_delay_ms: float = Field(2.0, ge=0, le=10_000, description="longest wait for a batch to fill")
    queue_capacity: int = Field(2048, ge=1, description="crops waiting at most; beyond it requests get 503")
    max_inflight_requests: int = Field(256, ge=1, description="image/tensor requests being read, decoded or queued at once; beyond it 503 before the body is read")
    request_timeout_s: float = Field(30.0, gt=0, description="a request not served within this gets 504")
    max_crops_per_request: int = Field(64, ge=1, description="images per request at most (413 beyond)")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="request body size at most (413 beyond)")
    max_inflated_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="a gzip/deflate body inflated at most (413 beyond; inflated incrementally, off the event loop)")
    max_image_pixels: int = Field(4_000_000, ge=1, description="pixels per image at most, from its header (413 beyond)")
    max_tiles_per_image: int = Field(64, ge=1, description="windows per image in mode=tile at most (413 beyond; mode=auto resizes such an image instead)")
    recognition: bool = Field(True, description="load the text recognizer (recognize=true, /v1/recognize)")
    png_compression: int = Field(1, ge=0, le=9, description="zlib level of returned PNGs (1 = fast)")
    api_key: SecretStr | None = Field(None, description="if set, required as X-API-Key (or Bearer) on all but health")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins as a JSON list, e.g. [\"https://app.example\"]; empty = CORS closed")
    drain_timeout_s: float = Field(30.0, gt=0, description="on SIGTERM, time to finish accepted work")
    log_level: str = Field("info", description="log level")


def markdown_table() -> str:
    """The settings as a Markdown table (the README's table is checked against this)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default_factory() if field.default_factory else field.default
        if name == "model_dir":
            default = "models/ (shipped)"
        rows.append(f"| `TEXTSR_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows)
