"""Errors the converter raises; each message says what to do about it."""

from __future__ import annotations

from core.errors import TextSRError


class ConversionError(TextSRError):
    """Root of the converter's errors."""


class Paddle2OnnxError(ConversionError):
    """paddle2onnx refused the graph; ``operators`` names the Paddle operators it could not convert."""

    def __init__(self, message: str, operators: list[str]) -> None:
        self.operators = operators
        super().__init__(message)


class VerificationError(ConversionError):
    """ONNX Runtime's output differs from Paddle's by more than the tolerance."""
