"""textsr: serving for PaddleOCR's scene-text super-resolution models (Text Telescope, Text Gestalt)."""

__version__ = "0.1.0"
