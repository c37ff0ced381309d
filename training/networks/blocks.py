"""Building blocks shared by TBSRN, TSRN and the text-focus recognizer, defined once.

Layer and attribute names follow PaddleOCR's ``ppocr/modeling/transforms/tsrn.py``,
``tbsrn.py`` and ``ppocr/modeling/heads/sr_rensnet_transformer.py`` (Apache-2.0), which port
FudanOCR (https://github.com/FudanVI/FudanOCR), so that checkpoint keys match theirs exactly.
The code is our own; differences that matter for export are noted where they occur.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import paddle
import paddle.nn.functional as F
from paddle import nn

from core.errors import ConfigError


class Mish(nn.Layer):
    """Mish activation through ``F.mish``.

    PaddleOCR writes ``x * tanh(softplus(x))``, which paddle2onnx 2.1 refuses to convert;
    ``F.mish`` computes the same function and exports cleanly.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.mish(x)


class GruBlock(nn.Layer):
    """1x1 convolution, then a bidirectional GRU along the last spatial axis of each row."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        if out_channels % 2:
            raise ConfigError(f"GruBlock needs an even out_channels, got {out_channels}")
        self.conv1 = nn.Conv2D(in_channels, out_channels, kernel_size=1, padding=0)
        self.gru = nn.GRU(out_channels, out_channels // 2, direction="bidirectional")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.conv1(x)
        _, c, h, w = x.shape
        x = x.transpose([0, 2, 3, 1]).reshape([-1, w, c])  # (b*h, w, c)
        x, _ = self.gru(x)
        return x.reshape([-1, h, w, c]).transpose([0, 3, 1, 2])


class FoldedConv2D(nn.Conv2D):
    """A stride-1, zero-padded "same" convolution with ``nn.Conv2D``'s parameters, computed in dygraph as a 1x1
    convolution to every kernel tap whose maps ``F.fold`` (col2im) sums into place.

    Same numbers up to fp32 rounding, and its gradients. Paddle's direct CPU kernel is slow for a wide kernel with few
    output channels: the tail conv's (9x9, 64 -> 3 channels at HR) forward + backward took 1.2 s alone (batch of 8, one
    core), this form 0.12 s; a TSRN training step went from 1.81 to 1.11 s (``bench/train_step.py``). Static graphs
    (``jit.to_static``, so every export) keep the plain convolution: the ONNX graph is unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        if kernel_size % 2 == 0:
            raise ConfigError(f"FoldedConv2D needs an odd kernel_size, got {kernel_size}")
        super().__init__(in_channels, out_channels, kernel_size=kernel_size, padding=kernel_size // 2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not paddle.in_dynamic_mode():
            return super().forward(x)
        kh, kw = self._kernel_size
        # tap (i, j) of the flipped kernel lands at offset (i - kh//2, j - kw//2) in fold's sum: that is correlation
        taps = paddle.flip(self.weight, axis=[2, 3]).transpose([0, 2, 3, 1]).reshape([-1, self._in_channels, 1, 1])
        n, _, h, w = x.shape
        cols = F.conv2d(x, taps).reshape([n, -1, h * w])  # [N, out*kh*kw, H*W], channel-major as fold expects
        out = F.fold(cols, [h, w], [kh, kw], paddings=[kh // 2, kw // 2])
        return out + self.bias.reshape([1, -1, 1, 1])


class UpsampleBlock(nn.Layer):
    """Convolution to ``scale**2`` times the channels, pixel shuffle, Mish."""

    def __init__(self, in_channels: int, up_scale: int) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_channels, in_channels * up_scale**2, kernel_size=3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(up_scale)
        self.prelu = Mish()  # PaddleOCR's attribute name, kept; it holds no parameters

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.prelu(self.pixel_shuffle(self.conv(x)))


class ResidualBlockBase(nn.Layer):
    """The layers both networks' residual blocks have, in PaddleOCR's order: conv1, bn1, gru1, prelu (Mish),
    conv2, bn2, gru2. Subclasses add what they add and define ``forward``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2D(channels, channels, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2D(channels)
        self.gru1 = GruBlock(channels, channels)
        self.prelu = Mish()
        self.conv2 = nn.Conv2D(channels, channels, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2D(channels)
        self.gru2 = GruBlock(channels, channels)

    def conv_path(self, x: paddle.Tensor) -> paddle.Tensor:
        """conv-BN-Mish-conv-BN."""
        return self.bn2(self.conv2(self.prelu(self.bn1(self.conv1(x)))))


class LayerNorm(nn.Layer):
    """PaddleOCR's layer norm: unbiased std, eps added to the std (parameters ``a_2``, ``b_2``)."""

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.a_2 = self.create_parameter([features], default_initializer=nn.initializer.Constant(1.0))
        self.b_2 = self.create_parameter([features], default_initializer=nn.initializer.Constant(0.0))
        self.eps = eps

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.a_2 * (x - mean) / (std + self.eps) + self.b_2


class MultiHeadedAttention(nn.Layer):
    """Scaled dot-product attention over ``h`` heads; returns the output and the attention map.

    ``compress_attention_linear`` is never used in the forward pass; it exists because
    checkpoints carry it.
    """

    def __init__(self, h: int, d_model: int, dropout: float = 0.1) -> None:
        super().__init__()
        if d_model % h:
            raise ConfigError(f"d_model {d_model} is not divisible by {h} heads")
        self.d_k = d_model // h
        self.h = h
        self.linears = nn.LayerList([nn.Linear(d_model, d_model) for _ in range(4)])
        self.dropout = nn.Dropout(p=dropout, mode="downscale_in_infer")
        self.compress_attention_linear = nn.Linear(h, 1)

    def forward(
        self,
        query: paddle.Tensor,
        key: paddle.Tensor,
        value: paddle.Tensor,
        mask: paddle.Tensor | None = None,
    ) -> tuple[paddle.Tensor, paddle.Tensor]:
        q, k, v = (
            lin(x).reshape([0, -1, self.h, self.d_k]).transpose([0, 2, 1, 3])
            for lin, x in zip(self.linears, (query, key, value))
        )
        scores = paddle.matmul(q, k, transpose_y=True) / math.sqrt(self.d_k)
        if mask is not None:
            scores = paddle.where(mask.unsqueeze(1), scores, paddle.full_like(scores, float("-inf")))
        attn = F.softmax(scores, axis=-1)
        out = paddle.matmul(self.dropout(attn), v)
        out = out.transpose([0, 2, 1, 3]).reshape([0, -1, self.h * self.d_k])
        return self.linears[3](out), attn


class PositionwiseFeedForward(nn.Layer):
    """Linear, ReLU, dropout, linear."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d_model, d_ff)
        self.w_2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout, mode="downscale_in_infer")

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.w_2(self.dropout(F.relu(self.w_1(x))))


def positional_encoding_2d(d_model: int, height: int, width: int) -> paddle.Tensor:
    """Fixed 2D sine/cosine encoding of shape ``[d_model, height, width]``.

    The first half of the channels encodes the column (sin, cos interleaved), the second half
    the row, as in PaddleOCR's ``positionalencoding2d``; unlike it, the grid size is an argument
    so that the same weights run at any input size.
    """
    if d_model % 4:
        raise ConfigError(f"2D positional encoding needs d_model divisible by 4, got {d_model}")
    half = d_model // 2
    div = paddle.exp(paddle.arange(0, half, 2, dtype="float32") * -(math.log(10000.0) / half))

    def encode(length: int) -> paddle.Tensor:  # [half, length], rows sin0, cos0, sin1, cos1 ...
        angles = paddle.arange(0, length, dtype="float32").unsqueeze(1) * div
        return paddle.stack([paddle.sin(angles), paddle.cos(angles)], axis=-1).reshape([length, half]).t()

    cols = encode(width).unsqueeze(1).expand([half, height, width])
    rows = encode(height).unsqueeze(2).expand([half, height, width])
    return paddle.concat([cols, rows], axis=0)


class SRBackbone(nn.Layer):
    """The skeleton both networks share, with PaddleOCR's ``block1`` .. ``block{srb_nums+3}`` names.

    ``block1`` conv 9x9 + PReLU; ``srb_nums`` residual blocks; a conv 3x3 + BN; then upsampling and a
    conv 9x9 back to RGB applied to the sum of ``block1`` and the residual trunk; ``tanh`` output.
    ``forward(lr) -> sr`` is the whole inference graph. When built with ``stn=True`` the TPS
    rectifier is applied to the input in training mode only, as in PaddleOCR. With ``text_prior=True`` the service
    recognizer's reading of the LR (:class:`training.networks.text_prior.TextPrior`) joins the input of each residual
    block through a zero-initialised 1x1 convolution (``prior``, ``prior_proj``: keys PaddleOCR's layout lacks); with
    ``prior_trainable`` that reading comes from a fine-tuned copy of the recognizer, part of the network
    (``prior.generator``); with ``prior_rows`` the prior's map has rows of its own (``prior.rows``), with ``prior_glyphs``
    its reading drawn as text joins it (``prior.glyph``); with ``prior_glyph_tail`` that drawing is made at the SR's size
    and also joins the upsampled features before the last convolution (``prior.tail``).
    """

    residual_block: Callable[[int], nn.Layer]
    """The residual block class of the network (set by each subclass)."""
    recognizer_attr: str = ""
    """Where PaddleOCR's checkpoints of this network keep the text-focus losses' frozen recognizer
    (``transformer`` / ``r34_transformer``); the recognizer itself belongs to the loss."""
    recognizer_alphabet: str = ""
    """The alphabet of that recognizer in PaddleOCR's layout."""

    def __init__(
        self,
        scale_factor: int = 2,
        srb_nums: int = 5,
        hidden_units: int = 32,
        in_planes: int = 3,
        stn: bool = False,
        lr_size: tuple[int, int] = (16, 64),
        bicubic_residual: bool = False,
        residual_scale: float = 1.0,
        text_prior: bool = False,
        prior_trainable: bool = False,
        prior_rows: int = 0,
        prior_glyphs: bool = False,
        prior_glyph_tail: bool = False,
    ) -> None:
        super().__init__()
        if scale_factor < 2 or math.log2(scale_factor) % 1:
            raise ConfigError(f"scale_factor must be a power of two >= 2, got {scale_factor}")
        width = 2 * hidden_units
        self.srb_nums = srb_nums
        self.block1 = nn.Sequential(nn.Conv2D(in_planes, width, kernel_size=9, padding=4), nn.PReLU())
        for i in range(srb_nums):
            self.add_sublayer(f"block{i + 2}", type(self).residual_block(width))
        trunk_out = nn.Sequential(nn.Conv2D(width, width, kernel_size=3, padding=1), nn.BatchNorm2D(width))
        # Zero-init the trunk's last BN scale: training starts from block1 -> upsampling, the
        # residual trunk joins as it learns (as timm's zero_init_last). Loaded weights replace it.
        trunk_out[1].weight.set_value(paddle.zeros_like(trunk_out[1].weight))
        self.add_sublayer(f"block{srb_nums + 2}", trunk_out)
        up = [UpsampleBlock(width, 2) for _ in range(int(math.log2(scale_factor)))]
        self.add_sublayer(
            f"block{srb_nums + 3}", nn.Sequential(*up, FoldedConv2D(width, in_planes, kernel_size=9))
        )
        self.scale = scale_factor
        self.bicubic_residual = bicubic_residual
        if residual_scale != 1 and not bicubic_residual:
            raise ConfigError(
                "Architecture.Transform.residual_scale needs bicubic_residual: true (it scales the part added to bicubic)"
            )
        self.residual_scale = residual_scale
        if bicubic_residual:  # start as exact bicubic upscaling: the tail conv outputs zero
            tail = getattr(self, f"block{srb_nums + 3}")[-1]
            tail.weight.set_value(paddle.zeros_like(tail.weight))
            tail.bias.set_value(paddle.zeros_like(tail.bias))
        self.text_prior = text_prior
        if prior_trainable and not text_prior:
            raise ConfigError("Architecture.Transform.prior_trainable needs text_prior: true (it trains the prior's generator)")
        self.prior_trainable = prior_trainable
        if text_prior:  # the recognizer's reading of the LR, added before each residual block (zero at the start)
            from training.networks.text_prior import TextPrior

            self.prior = TextPrior(
                width, trainable=prior_trainable, rows=prior_rows, glyphs=prior_glyphs,
                tail_scale=scale_factor if prior_glyph_tail else 0,
            )
            self.prior_proj = nn.LayerList([nn.Conv2D(width, width, kernel_size=1) for _ in range(srb_nums)])
            for proj in self.prior_proj:
                proj.weight.set_value(paddle.zeros_like(proj.weight))
                proj.bias.set_value(paddle.zeros_like(proj.bias))
        self.stn = stn
        if stn:
            from training.networks.stn import STNHead, TPSSpatialTransformer

            self.tps = TPSSpatialTransformer(output_image_size=lr_size, num_control_points=20, margins=(0.05, 0.05))
            self.stn_head = STNHead(in_channels=in_planes, num_ctrlpoints=20)

    @property
    def added_prefixes(self) -> tuple[str, ...]:
        """Prefixes of this network's keys that PaddleOCR's layout lacks (a text prior's layers): weights trained without
        them may leave these as built (zero: the same function), e.g. ``Global.pretrained_model``."""
        return ("prior.", "prior_proj.") if self.text_prior else ()

    def forward(
        self, lr: paddle.Tensor, prior: paddle.Tensor | None = None, glyphs: paddle.Tensor | None = None
    ) -> paddle.Tensor:
        """Map a low-resolution batch ``[N, 3, h, w]`` in [0, 1] to ``[N, 3, 2h, 2w]`` in (-1, 1).

        With ``text_prior``, ``prior`` is the recognizer's reading of ``lr`` (:meth:`TextPrior.probabilities`, computed
        here when not given; an exported graph takes it as its second input); with ``prior_glyphs``, ``glyphs`` is that
        reading drawn at :meth:`TextPrior.glyph_size` (drawn here when not given; an exported graph's third input)."""
        tail_glyphs = self.text_prior and self.prior.tail_scale
        if self.text_prior:
            if prior is None:
                prior = self.prior.probabilities(lr)
            if tail_glyphs and glyphs is None:
                glyphs = self.prior.draw(prior, lr.shape[2], lr.shape[3])
            prior = self.prior(prior, lr.shape[3], lr.shape[2], glyphs)
        elif prior is not None or glyphs is not None:
            raise ValueError("this network was built without text_prior; it takes no prior")
        if self.stn and self.training:
            lr = self.tps(lr, self.stn_head(lr))
        head = self.block1(lr)
        x = head
        for i in range(self.srb_nums + 1):
            if prior is not None and i < self.srb_nums:
                x = x + self.prior_proj[i](prior)
            x = getattr(self, f"block{i + 2}")(x)
        tail = getattr(self, f"block{self.srb_nums + 3}")
        if tail_glyphs:  # upsample, join the drawing at the SR's size, then the last convolution
            x = head + x
            for i in range(len(tail) - 1):
                x = tail[i](x)
            out = paddle.tanh(tail[len(tail) - 1](self.prior.join(x, glyphs)))
        else:
            out = paddle.tanh(tail(head + x))
        if self.bicubic_residual:
            if self.residual_scale != 1:
                out = out * self.residual_scale
            out = out + self.base(lr)
        return out

    def base(self, lr: paddle.Tensor) -> paddle.Tensor:
        """The bicubic upscaling of ``lr`` that ``bicubic_residual`` adds the network's part to."""
        size = [lr.shape[2] * self.scale, lr.shape[3] * self.scale]  # size, not scale_factor: paddle2onnx needs it
        return F.interpolate(lr, size=size, mode="bicubic", align_corners=False)
