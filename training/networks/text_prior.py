"""A text prior for the SR network (TPGSR-style, Ma et al. 2023): the service recognizer's reading of the LR crop.

The frozen service recognizer (PP-OCRv6 small, read from the ONNX file the service reads) looks at the LR crop as
``/v1/recognize?source=raw`` does; its per-timestep class probabilities, cut to the columns that hold the crop
(the rest is padding) and to :data:`PRIOR_CHARSET` plus the blank and a "rest" class (all other characters), are
embedded per timestep, resampled to the LR width and repeated down the rows. :meth:`TextPrior.probabilities` is the
recognizer's part (the service computes the same from its own ONNX session), :meth:`TextPrior.forward` the network's.
The network adds this map into its residual trunk through zero-initialised 1x1 convolutions, so a network with a
prior starts as the same function as one without (and loads its weights: the prior's keys are new).
The recognizer is not a sublayer: its weights are constants, never saved with the SR weights.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import nn

from core.spec import PRIOR_CHARSET
from training.networks.blocks import Mish

__all__ = ["PRIOR_CHARSET", "TextPrior"]


class TextPrior(nn.Layer):
    """``probabilities(lr [N, 3, h, w] in [0, 1]) -> [N, classes, T_crop]``, ``forward(those, w, h) -> [N, channels, h, w]``."""

    def __init__(self, channels: int, recognizer_model: str | None = None) -> None:
        super().__init__()
        from training.networks.service_recognizer import ServiceRecognizer

        self.recognizer = [ServiceRecognizer(recognizer_model)]  # a list: not a sublayer, never in the state dict
        index = self.recognizer[0].index
        missing = [c for c in PRIOR_CHARSET if c not in index]
        if missing:
            raise ValueError(f"the service recognizer lacks prior characters {missing}")
        self.columns = paddle.to_tensor([0] + [index[c] for c in PRIOR_CHARSET], dtype="int64")  # blank first
        self.classes = len(PRIOR_CHARSET) + 2  # blank, the characters, rest
        self.embed = nn.Sequential(nn.Conv1D(self.classes, channels, 1), Mish(), nn.Conv1D(channels, channels, 3, padding=1))

    def probabilities(self, lr: paddle.Tensor) -> paddle.Tensor:
        """The recognizer's class probabilities over the crop's columns: ``[N, classes, T_crop]`` (columns sum to 1)."""
        from service.recognizer import WIDTH, target_width

        rec = self.recognizer[0]
        with paddle.no_grad():
            probs = F.softmax(rec(lr), axis=-1)  # [N, T, C]
        steps = probs.shape[1]
        used = max(1, math.ceil(steps * target_width(lr.shape[2], lr.shape[3]) / WIDTH))
        picked = paddle.index_select(probs[:, :used], self.columns, axis=-1)  # [N, T_crop, K]
        rest = paddle.clip(1 - picked.sum(-1, keepdim=True), min=0.0)
        return paddle.concat([picked, rest], axis=-1).transpose([0, 2, 1]).detach()

    def forward(self, probabilities: paddle.Tensor, width: int, height: int) -> paddle.Tensor:
        """Embed :meth:`probabilities` ``[N, classes, T_crop]`` into a ``[N, channels, height, width]`` map."""
        features = self.embed(probabilities)  # [N, channels, T_crop]
        features = F.interpolate(features.unsqueeze(2), size=[1, width], mode="bilinear", align_corners=False)
        return features.expand([features.shape[0], features.shape[1], height, width])
