"""Every error the service answers with, as one tree; each class names its HTTP status.

Domain modules raise these and never pick status codes or import the web framework; the HTTP
adapter (``service.http.protocols``) turns any ``TextSRError`` into ``status`` with the error body of
the protocol whose route owns the request (v1: ``{"error": {"code", "message", "request_id"}}``,
KServe v2: ``{"error": "<message>"}``).
"""

from __future__ import annotations

from core.errors import TextSRError  # the project-wide root; every service error derives from it


# Client errors...
class InvalidImage(TextSRError):
    """HTTP 400: an image part could not be decoded."""

    status, code = 400, "invalid_image"


class InvalidRequest(TextSRError):
    """HTTP 400: the request body is malformed (bad JSON, missing field, bad tensor)."""

    status, code = 400, "invalid_request"


class Unauthorized(TextSRError):
    """HTTP 401: the API key is missing or wrong."""

    status, code = 401, "unauthorized"


class ModelNotFound(TextSRError):
    """HTTP 404: no model of that name (or version) is loaded."""

    status, code = 404, "model_not_found"


class PayloadTooLarge(TextSRError):
    """HTTP 413: too many bytes, pixels or crops."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(TextSRError):
    """HTTP 415: the request's content type is not one we accept."""

    status, code = 415, "unsupported_media_type"


class InvalidOption(TextSRError):
    """HTTP 422: a query or form option has a bad value."""

    status, code = 422, "invalid_option"


# Server-side conditions...
class EngineError(TextSRError):
    """HTTP 500: ONNX Runtime failed while running a batch."""

    status, code = 500, "engine_error"


class ModelNotReady(TextSRError):
    """HTTP 503: the model is still loading or warming up, or the service is shutting down."""

    status, code = 503, "model_not_ready"


class QueueFull(TextSRError):
    """HTTP 503 with Retry-After: the batch queue is at capacity."""

    status, code = 503, "queue_full"


class RequestTimeout(TextSRError):
    """HTTP 504: the request was not served within the request timeout."""

    status, code = 504, "timeout"


class ModelLoadError(TextSRError):
    """A model folder cannot be served (missing file, sha256 mismatch, shape mismatch); fatal at startup."""
