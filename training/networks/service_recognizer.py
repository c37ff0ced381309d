"""The service's recognizer (PP-OCRv6 small, CTC) as a frozen, differentiable Paddle layer for training losses.

``ServiceRecognizer(images)`` takes RGB batches in [0, 1] of any size (SR output, HR crops) and returns
per-timestep class logits ``[N, T, C]``. The path in front of the network is
:func:`service.recognizer.prepare`'s, step for step and with its constants (height 48, aspect-kept
width, bilinear resize, RGB -> BGR, ``(x - MEAN) / STD``, zero padding on the right to 320), only
differentiable; a test holds the two equal. The weights come from the very ONNX file the service reads
(``trainable=True``: as parameters, the start of a fine-tuned copy; see :class:`training.networks.onnx_graph.OnnxGraph`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.errors import DataError
from service.recognizer import HEIGHT, MEAN, STD, WIDTH, characters, default_model_path, target_width
from training.networks.onnx_graph import OnnxGraph


class ServiceRecognizer(nn.Layer):
    """Frozen PP-OCRv6 small: ``forward(rgb [N, 3, h, w] in [0, 1]) -> logits [N, T, C]`` (softmax gives the service's probabilities)."""

    def __init__(self, path: str | Path | None = None, trainable: bool = False) -> None:
        super().__init__()
        path = Path(path) if path else default_model_path()
        self.graph = OnnxGraph(path, trainable=trainable)
        final = self.graph.producer_of(self.graph.output_name)
        if final is None or final[0] != "Softmax":
            raise DataError(f"{path}: expected a CTC recognizer whose output is a Softmax over classes")
        self.graph.set_output(final[1][0])  # the logits that feed the softmax
        self.characters = characters(self.graph.metadata)
        self.index = {c: i for i, c in enumerate(self.characters) if i}
        self.path = path
        self.eval()

    def prepare(self, rgb: paddle.Tensor) -> paddle.Tensor:
        """``service.recognizer.prepare`` for a float batch: [N, 3, h, w] RGB in [0, 1] -> [N, 3, 48, 320]."""
        _, _, h, w = rgb.shape
        width = target_width(h, w)
        x = F.interpolate(paddle.clip(rgb, 0.0, 1.0), size=[HEIGHT, width], mode="bilinear", align_corners=False)
        x = (paddle.flip(x, axis=[1]) - MEAN) / STD
        return F.pad(x, [0, WIDTH - width, 0, 0]) if width < WIDTH else x

    def forward(self, rgb: paddle.Tensor) -> paddle.Tensor:
        return self.graph(self.prepare(rgb))

    @property
    def logits(self) -> str:
        """The graph's name for the logits (what ``forward`` returns)."""
        return self.graph.output_name

    def run(self, rgb: paddle.Tensor, names: tuple[str, ...]) -> dict[str, paddle.Tensor]:
        """Several values of the graph (``self.logits``, intermediate features by their ONNX names) in one pass."""
        return self.graph.values(self.prepare(rgb), names)

    def encode(self, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """CTC targets: ``(labels [N, L] int32, lengths [N] int64)``; characters the model lacks are skipped."""
        seqs = [[self.index[c] for c in label if c in self.index] for label in labels]
        out = np.zeros((len(seqs), max(1, max(map(len, seqs)))), np.int32)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = s
        return out, np.asarray([len(s) for s in seqs], np.int64)
