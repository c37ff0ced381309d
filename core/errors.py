"""The one error tree of the whole project: every error textsr raises on purpose derives from TextSRError.

The CLI catches :class:`TextSRError` and prints its message as one line (``--debug`` shows the
traceback); the service maps its subclasses to HTTP statuses (``status``, ``code``). The leaves
below also derive from the matching built-in (``ValueError``, ``FileNotFoundError``), so callers
that catch those keep working.
"""

from __future__ import annotations


class TextSRError(Exception):
    """Root of textsr's errors; as an HTTP answer, 500 unless a subclass says otherwise."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class ConfigError(TextSRError, ValueError):
    """A config file, override, option or argument is malformed or unsupported; the message names it."""


class InputNotFound(TextSRError, FileNotFoundError):
    """A file or folder the user named (config, checkpoint, data, image, model) does not exist."""


class DataError(TextSRError, ValueError):
    """A file exists but does not hold what it must (a checkpoint, an LMDB, a table, a graph)."""
