"""The service's pipeline for synchronous callers (``textsr upscale`` in-process, ``textsr eval``), without HTTP.

:class:`LocalPipeline` runs the very :class:`service.pipeline.Pipeline` the server runs, with the same
settings and limits, on an event loop of its own in a background thread, and offers blocking calls.
Nothing here imports a web framework.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from service.metrics import Metrics
from service.pipeline import CropResult, Pipeline
from service.repository import ModelRepository, load_model
from service.settings import Settings

T = TypeVar("T")


class LocalPipeline:
    """``with LocalPipeline(settings) as p: p.upscale(images)``: the server's pipeline, called directly.

    Args:
        settings: the service settings (model folder, providers, limits, recognition).
        model_folder: one converted model folder to serve instead of every model under
            ``settings.model_dir`` (e.g. a run's ``model/`` next to its checkpoints).
    """

    def __init__(self, settings: Settings | None = None, model_folder: Path | None = None) -> None:
        self.settings = s = settings or Settings()
        if model_folder is not None:
            repository = ModelRepository([load_model(Path(model_folder), s.providers, s.precision, s.intra_op_threads)])
        else:
            repository = ModelRepository.load(s.model_dir, s.providers, s.precision, s.intra_op_threads, s.default_model)
        self.pipeline = Pipeline(s, repository, Metrics())
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="textsr-local-pipeline", daemon=True)
        self._thread.start()
        try:
            self._call(self.pipeline.start())
        except BaseException:
            self.close()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def upscale(self, decoded: list[np.ndarray], model: str | None = None, mode: str = "auto", recognize: bool = False) -> list[CropResult]:
        """Decoded RGB images -> SR images (and text), exactly as ``/v1/upscale``."""
        return self._call(self.pipeline.upscale(decoded, model, mode, recognize))

    def infer(self, lr: np.ndarray, model: str | None = None) -> np.ndarray:
        """Raw LR batch [n, 3, h, w] in [0, 1] -> SR batch, exactly as the v2 infer endpoint."""
        return self._call(self.pipeline.infer(model, np.ascontiguousarray(lr, np.float32)))

    def read_text(self, rgb_images: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text of RGB uint8 images through the service's recognizer."""
        return self._call(self.pipeline.read_text(rgb_images))

    def close(self) -> None:
        """Finish accepted work, stop the loop and its thread."""
        if self._loop.is_closed():
            return
        if self.pipeline.ready:
            self._call(self.pipeline.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> LocalPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
