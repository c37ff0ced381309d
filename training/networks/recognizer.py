"""The text-focus recognizer that the Telescope and Gestalt losses look through.

Parameter layout of PaddleOCR's ``ppocr/modeling/heads/sr_rensnet_transformer.py`` (Apache-2.0,
from https://github.com/FudanVI/FudanOCR, text-gestalt/loss/transformer_english_decomposition.py):
a ResNet encoder over the grey image (1024 x H/4 x W/4 features) and one transformer decoder
layer that attends from the (teacher-forced) label sequence to the image features. It is a
training-time tool only; it is never part of an exported SR graph.
"""

from __future__ import annotations

import math

import paddle
from paddle import nn

from core.errors import ConfigError
from training.config import RECOGNIZER_WIDTH_RULE, recognizer_width_ok
from training.networks.blocks import LayerNorm, MultiHeadedAttention, PositionwiseFeedForward


def _bn(channels: int) -> nn.BatchNorm2D:
    """Batch statistics while pretraining (train mode), running statistics once frozen (eval mode).

    PaddleOCR builds these with ``use_global_stats=True``: right for its frozen, already trained
    recognizer, but pretraining from scratch would then never normalise (mean 0 / variance 1 forever).
    """
    return nn.BatchNorm2D(channels)


class BasicBlock(nn.Layer):
    """Two 3x3 convolutions with a residual connection (optionally projected)."""

    def __init__(self, inplanes: int, planes: int, downsample: nn.Layer | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(inplanes, planes, kernel_size=3, padding=1)
        self.bn1 = _bn(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(planes, planes, kernel_size=3, padding=1)
        self.bn2 = _bn(planes)
        self.downsample = downsample

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + residual)


def _make_layer(inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    down = None
    if inplanes != planes:
        down = nn.Sequential(nn.Conv2D(inplanes, planes, 3, 1, 1), _bn(planes))
    layers = [BasicBlock(inplanes, planes, down)] + [BasicBlock(planes, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class ResNet(nn.Layer):
    """Encoder CNN: two pooled stems, then four residual stages (1, 2, 5, 3 blocks).

    ``width`` scales every channel count (1.0 is PaddleOCR's layout; the output has ``1024 * width``
    channels).
    """

    def __init__(self, num_in: int = 1, layers: tuple[int, int, int, int] = (1, 2, 5, 3), width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256, c512, c1024 = (int(n * width) for n in (64, 128, 256, 512, 1024))
        self.conv1 = nn.Conv2D(num_in, c64, kernel_size=3, padding=1)
        self.bn1 = _bn(c64)
        self.conv2 = nn.Conv2D(c64, c128, kernel_size=3, padding=1)
        self.bn2 = _bn(c128)
        # four stages: residual blocks, then conv + BN (PaddleOCR's names; the last is ``layer4_conv2``)
        self.stages = []
        for i, (cin, cout, cend) in enumerate(((c128, c256, c256), (c256, c256, c256), (c256, c512, c512), (c512, c512, c1024)), 1):
            conv, bn = ("layer4_conv2", "layer4_conv2_bn") if i == 4 else (f"layer{i}_conv", f"layer{i}_bn")
            self.add_sublayer(f"layer{i}", _make_layer(cin, cout, layers[i - 1]))
            self.add_sublayer(conv, nn.Conv2D(cout, cend, 3, 1, 1))
            self.add_sublayer(bn, _bn(cend))
            self.stages.append((f"layer{i}", conv, bn))
        self.pool = nn.MaxPool2D(2, 2)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        for blocks, conv, bn in self.stages:
            x = self.relu(getattr(self, bn)(getattr(self, conv)(getattr(self, blocks)(x))))
        return x


class Encoder(nn.Layer):
    """Holds the CNN under the name ``cnn`` (checkpoint layout)."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.cnn = ResNet(width=width)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.cnn(x)


class Decoder(nn.Layer):
    """Masked self-attention over the text, attention from text to image, feed-forward."""

    def __init__(self, d_model: int = 1024) -> None:
        super().__init__()
        self.mask_multihead = MultiHeadedAttention(h=16, d_model=d_model, dropout=0.1)
        self.mul_layernorm1 = LayerNorm(d_model)
        self.multihead = MultiHeadedAttention(h=16, d_model=d_model, dropout=0.1)
        self.mul_layernorm2 = LayerNorm(d_model)
        self.pff = PositionwiseFeedForward(d_model, 2 * d_model)
        self.mul_layernorm3 = LayerNorm(d_model)

    def forward(self, text: paddle.Tensor, image: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        length = text.shape[1]
        causal = paddle.tril(paddle.ones([1, length, length])).astype("bool")
        x = self.mul_layernorm1(text + self.mask_multihead(text, text, text, mask=causal)[0])
        feat = image.flatten(2).transpose([0, 2, 1])
        aligned, attention_map = self.multihead(x, feat, feat)
        x = self.mul_layernorm2(x + aligned)
        return self.mul_layernorm3(x + self.pff(x)), attention_map


class Embeddings(nn.Layer):
    """Token embedding scaled by sqrt(d_model) (parameter ``lut``)."""

    def __init__(self, d_model: int, vocab: int) -> None:
        super().__init__()
        self.lut = nn.Embedding(vocab, d_model)
        self.d_model = d_model

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.lut(x) * math.sqrt(self.d_model)


class PositionalEncoding(nn.Layer):
    """1D sine/cosine table, saved as the buffer ``pe`` [1, max_len, dim] as PaddleOCR does."""

    def __init__(self, dim: int = 512, max_len: int = 5000) -> None:
        super().__init__()
        position = paddle.arange(0, max_len, dtype="float32").unsqueeze(1)
        div = paddle.exp(paddle.arange(0, dim, 2, dtype="float32") * (-math.log(10000.0) / dim))
        pe = paddle.stack([paddle.sin(position * div), paddle.cos(position * div)], axis=-1).reshape([max_len, dim])
        self.register_buffer("pe", pe.unsqueeze(0))

    def forward(self, length: int) -> paddle.Tensor:
        return self.pe[:, :length]


class Generator(nn.Layer):
    """Projection to class logits (parameter ``proj``)."""

    def __init__(self, d_model: int, vocab: int) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, vocab)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.proj(x)


class Transformer(nn.Layer):
    """Recognizer: ``forward(image, text_input) -> (logits [N, T, V], attention [N, 16, T, HW])``.

    ``text_input`` holds class indices, teacher-forced: position 0 is 0 (start/blank) and position
    ``t`` is the label's character ``t-1``. RGB input is turned to grey with BT.601 weights.

    ``width`` scales every layer's channels: 1.0 is PaddleOCR's ~62M-parameter layout, the one its
    checkpoints hold; 0.25 (~4M parameters, ~16x fewer FLOPs) is what 2 CPU cores can pretrain.
    """

    def __init__(self, alphabet: str, width: float = 1.0) -> None:
        super().__init__()
        if not recognizer_width_ok(width):
            raise ConfigError(f"recognizer width must be {RECOGNIZER_WIDTH_RULE}, got {width}")
        d_model = int(1024 * width)
        self.alphabet, self.width = alphabet, width
        self.embedding_word_with_upperword = Embeddings(d_model // 2, len(alphabet))
        self.pe = PositionalEncoding(dim=d_model // 2, max_len=5000)
        self.encoder = Encoder(width)
        self.decoder = Decoder(d_model)
        self.generator_word_with_upperword = Generator(d_model, len(alphabet))
        for p in self.parameters():
            if p.ndim > 1:
                nn.initializer.XavierNormal()(p)

    def freeze(self) -> None:
        """Stop gradients to the recognizer's parameters and put it in eval mode.

        Paddle's ``Layer.train()`` on a parent switches this layer back to training mode; the
        training loop calls ``freeze()`` again after it.
        """
        for p in self.parameters():
            p.stop_gradient = True
        self.eval()

    def forward(self, image: paddle.Tensor, text_input: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
        if image.shape[1] == 3:
            image = 0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]
        features = self.encoder(image)
        embedded = self.embedding_word_with_upperword(text_input)
        pos = self.pe(text_input.shape[1]).expand([embedded.shape[0], -1, -1])
        hidden, attention_map = self.decoder(paddle.concat([embedded, pos], axis=2), features)
        return self.generator_word_with_upperword(hidden), attention_map
