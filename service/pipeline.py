"""The service's domain flow: images -> LR crops -> batched SR (and text) -> results.

Wires the model repository to one dynamic batcher per model plus one for the recognizer, owns
warm-up and draining. No HTTP here: handlers call these methods and serialize what they return.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np

from service import images
from service.batcher import DynamicBatcher
from service.engine import OrtEngine
from service.errors import InvalidOption, ModelNotReady, PayloadTooLarge
from service.metrics import Metrics
from service.recognizer import ITEM_SHAPE as REC_SHAPE
from service.recognizer import TextRecognizer, default_model_path, prepare
from service.repository import LoadedModel, ModelRepository
from service.settings import Settings

log = logging.getLogger("textsr.pipeline")

MODES = ("auto", "resize", "tile")
TILE_OVERLAP = 16
"""LR pixels shared by neighbouring windows in mode=tile (a quarter of the 64-pixel window)."""


@dataclass
class CropResult:
    """One input image's answer."""

    sr: np.ndarray  # RGB uint8, the 2x image
    input_size: tuple[int, int]  # (width, height) of the decoded input
    mode: str = "resize"  # how this image went through the model: resize or tile
    text: str | None = None
    confidence: float | None = None


class Pipeline:
    """Everything between a decoded request and its results, for all loaded models."""

    def __init__(self, settings: Settings, repository: ModelRepository, metrics: Metrics) -> None:
        self.settings = settings
        self.repository = repository
        self.metrics = metrics
        self.batchers: dict[str, DynamicBatcher] = {}
        self.recognizer: TextRecognizer | None = None
        self.rec_batcher: DynamicBatcher | None = None
        self.ready = False
        self.draining = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Start batchers, run one warm-up inference per model at the largest batch, then report ready."""
        s = self.settings
        for name, model in self.repository.models.items():
            b = DynamicBatcher(
                lambda x, e=model.engine: e(x),
                tuple(model.manifest.input.shape[1:]),
                max_batch_size=s.max_batch_size,
                max_queue_delay_ms=s.max_queue_delay_ms,
                capacity=s.queue_capacity,
                name=name,
                observer=self.metrics.observer(name),
            )
            b.start()
            self.batchers[name] = b
            self.metrics.track_depth(name, lambda b=b: b.depth)
            m = model.manifest
            self.metrics.model_info.labels(name, m.algorithm, m.backbone, model.precision, model.engine.providers[0]).set(1)
        if s.recognition:
            engine = OrtEngine(default_model_path(), providers=s.providers, intra_op_threads=s.intra_op_threads)
            self.recognizer = TextRecognizer(engine)
            self.rec_batcher = DynamicBatcher(
                self.recognizer,
                REC_SHAPE,
                max_batch_size=s.max_batch_size,
                max_queue_delay_ms=s.max_queue_delay_ms,
                capacity=s.queue_capacity,
                name="recognizer",
                observer=self.metrics.observer("recognizer"),
            )
            self.rec_batcher.start()
            self.metrics.track_depth("recognizer", lambda: self.rec_batcher.depth)
            self.metrics.model_info.labels("recognizer", "PP-OCRv6", "rec_small", "fp32", engine.providers[0]).set(1)
        # Warm-up with the largest batch a batcher forms: the first run allocates and optimises, and ONNX Runtime's arena
        # grows to what any later batch needs, so resident memory does not creep up under load (the 10-minute soak read
        # +5.7% over minutes 1-5 with a one-crop warm-up, then flat).
        warm = min(s.max_batch_size, s.queue_capacity)
        for name, model in self.repository.models.items():
            await self.batchers[name].submit(np.zeros((warm, *model.manifest.input.shape[1:]), np.float32))
        if self.rec_batcher is not None:
            await self.rec_batcher.submit(np.zeros((warm, *REC_SHAPE), np.float32))
        self.ready = True
        log.info("ready: models %s, recognizer %s", sorted(self.batchers), "on" if self.recognizer else "off")

    async def close(self) -> bool:
        """Refuse new work and finish all accepted work (SIGTERM drain)."""
        self.draining, self.ready = True, False
        all_batchers = [*self.batchers.values(), *([self.rec_batcher] if self.rec_batcher else [])]
        results = await asyncio.gather(*(b.close(self.settings.drain_timeout_s) for b in all_batchers))
        return all(results)

    def _check_ready(self) -> None:
        if not self.ready:
            raise ModelNotReady("the service is shutting down" if self.draining else "models are still loading")

    # -- work ----------------------------------------------------------------------------
    def model(self, name: str | None) -> LoadedModel:
        return self.repository.get(name)

    async def infer(self, name: str | None, lr: np.ndarray) -> np.ndarray:
        """Raw tensor inference (KServe v2): LR batch [n, 3, h, w] -> SR batch, through the batcher."""
        self._check_ready()
        model = self.model(name)
        if len(lr) > self.settings.max_crops_per_request:
            raise PayloadTooLarge(f"{len(lr)} crops in one request; the limit is {self.settings.max_crops_per_request}")
        out = await self.batchers[model.name].submit(lr, self.settings.request_timeout_s)
        return np.stack(out)

    async def upscale(
        self, decoded: list[np.ndarray], name: str | None = None, mode: str = "auto", recognize: bool = False
    ) -> list[CropResult]:
        """Upscale decoded RGB images; mode ``resize`` (PaddleOCR's), ``tile`` (keeps long lines' aspect) or
        ``auto`` (tile when a crop is far wider than the model input, see ``images.resolve_mode``)."""
        self._check_ready()
        if mode not in MODES:
            raise InvalidOption(f"mode must be one of {list(MODES)}, got {mode!r}")
        if recognize and self.rec_batcher is None:
            raise InvalidOption("recognize=true but recognition is disabled on this server (TEXTSR_RECOGNITION=false)")
        model = self.model(name)
        limit = self.settings.max_tiles_per_image
        # resizing, tiling and blending are CPU work: off the event loop, which keeps answering health probes
        batch, layouts, counts = await asyncio.to_thread(images.prepare_crops, decoded, model.manifest.lr_size, mode, TILE_OVERLAP, limit)
        outputs = await self.batchers[model.name].submit(batch, self.settings.request_timeout_s)
        sr = await asyncio.to_thread(images.assemble, outputs, layouts, counts, model.manifest.scale)
        results = [
            CropResult(out, (img.shape[1], img.shape[0]), "resize" if layout is None else "tile")
            for img, out, layout in zip(decoded, sr, layouts)
        ]
        if recognize:
            texts = await self.read_text([r.sr for r in results])
            for r, (text, conf) in zip(results, texts):
                r.text, r.confidence = text, conf
        return results

    async def read_text(self, rgb_images: list[np.ndarray]) -> list[tuple[str, float]]:
        """Recognize the text of RGB uint8 images, batched across requests."""
        self._check_ready()
        if self.rec_batcher is None:
            raise InvalidOption("recognition is disabled on this server (TEXTSR_RECOGNITION=false)")
        batch = await asyncio.to_thread(lambda: np.stack([prepare(img) for img in rgb_images]))
        return await self.rec_batcher.submit(batch, self.settings.request_timeout_s)
