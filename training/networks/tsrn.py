"""TSRN, the Text Gestalt backbone (Wang et al., ECCV 2020; Chen et al., AAAI 2022 "Text Gestalt").

Ported from PaddleOCR ``ppocr/modeling/transforms/tsrn.py`` (Apache-2.0), itself from
https://github.com/FudanVI/FudanOCR/blob/main/text-gestalt/model/tsrn.py.
Same parameter names and shapes; the forward pass takes the LR tensor itself (PaddleOCR's takes
a list and reads item 1).
"""

from __future__ import annotations

import paddle

from core.spec import GESTALT_ALPHABET
from training.networks.blocks import ResidualBlockBase, SRBackbone

__all__ = ["TSRN", "build_tsrn"]


class RecurrentResidualBlock(ResidualBlockBase):
    """conv-BN-Mish-conv-BN, a GRU across columns, residual add, then a GRU across rows."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        residual = self.gru1(self.conv_path(x).transpose([0, 1, 3, 2])).transpose([0, 1, 3, 2])
        return self.gru2(x + residual)


class TSRN(SRBackbone):
    """Text Gestalt's SR network (its checkpoints carry the stroke recognizer as ``r34_transformer``)."""

    residual_block = RecurrentResidualBlock
    recognizer_attr = "r34_transformer"
    recognizer_alphabet = GESTALT_ALPHABET


def build_tsrn(**kwargs) -> TSRN:
    """Build TSRN; keyword arguments as :class:`training.networks.blocks.SRBackbone`."""
    return TSRN(**kwargs)
