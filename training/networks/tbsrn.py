"""TBSRN, the Text Telescope backbone (Chen et al., CVPR 2021, "Scene Text Telescope").

Ported from PaddleOCR ``ppocr/modeling/transforms/tbsrn.py`` (Apache-2.0), itself from
https://github.com/FudanVI/FudanOCR/blob/main/scene-text-telescope/model/tbsrn.py.
Same parameter names and shapes; the forward pass takes one tensor and returns one, and the
positional encoding follows the input size instead of a fixed 16x64 grid.
"""

from __future__ import annotations

import paddle
from paddle import nn

from core.spec import TELESCOPE_ALPHABET
from training.networks.blocks import (
    LayerNorm,
    MultiHeadedAttention,
    PositionwiseFeedForward,
    ResidualBlockBase,
    SRBackbone,
    positional_encoding_2d,
)

__all__ = ["TBSRN", "build_tbsrn"]


class FeatureEnhancer(nn.Layer):
    """Self-attention over all positions of the feature map, with a 2D positional encoding."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        d_model = 2 * channels
        self.channels = channels
        self.multihead = MultiHeadedAttention(h=4, d_model=d_model, dropout=0.1)
        self.mul_layernorm1 = LayerNorm(d_model)
        self.pff = PositionwiseFeedForward(d_model, d_model)
        self.mul_layernorm3 = LayerNorm(d_model)
        self.linear = nn.Linear(d_model, channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        _, c, h, w = x.shape
        feat = x.reshape([0, c, h * w])
        pos = positional_encoding_2d(self.channels, h, w).reshape([1, self.channels, h * w])
        seq = paddle.concat([feat, pos + paddle.zeros_like(feat[:, : self.channels])], axis=1).transpose([0, 2, 1])
        seq = self.mul_layernorm1(seq + self.multihead(seq, seq, seq)[0])
        seq = self.mul_layernorm3(seq + self.pff(seq))
        return self.linear(seq).transpose([0, 2, 1]).reshape([0, c, h, w])


class RecurrentResidualBlock(ResidualBlockBase):
    """conv-BN-Mish-conv-BN, then the feature enhancer, added to the input.

    ``gru1``/``gru2`` are built but never run, exactly as in PaddleOCR: checkpoints hold them.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.feature_enhancer = FeatureEnhancer(channels)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.feature_enhancer(self.conv_path(x))


class TBSRN(SRBackbone):
    """Text Telescope's SR network (its checkpoints carry the letter recognizer as ``transformer``)."""

    residual_block = RecurrentResidualBlock
    recognizer_attr = "transformer"
    recognizer_alphabet = TELESCOPE_ALPHABET


def build_tbsrn(**kwargs) -> TBSRN:
    """Build TBSRN; keyword arguments as :class:`training.networks.blocks.SRBackbone`."""
    return TBSRN(**kwargs)
