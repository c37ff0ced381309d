"""Thin-plate-spline rectification used by both networks in training mode only.

Parameter layout of PaddleOCR's ``ppocr/modeling/transforms/stn.py`` (``STN``) and the TPS grid of
``tps_spatial_transformer.py`` (Apache-2.0; both from https://github.com/ayumiymk/aster.pytorch).
The head sees the LR image resized to 32x64, the size its five poolings reduce to the 1x2 grid
that ``stn_fc1`` (512 inputs) expects; the TPS then resamples the LR image at its own size.
"""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

HEAD_INPUT_SIZE = (32, 64)


def _conv3x3_block(in_channels: int, out_channels: int) -> nn.Sequential:
    std = float(np.sqrt(2.0 / (9 * out_channels)))
    conv = nn.Conv2D(
        in_channels,
        out_channels,
        kernel_size=3,
        padding=1,
        weight_attr=nn.initializer.Normal(0.0, std),
        bias_attr=nn.initializer.Constant(0.0),
    )
    return nn.Sequential(conv, nn.BatchNorm2D(out_channels), nn.ReLU())


def _control_points(num_points: int, margin_x: float, margin_y: float) -> np.ndarray:
    per_side = num_points // 2
    xs = np.linspace(margin_x, 1.0 - margin_x, per_side)
    top = np.stack([xs, np.full(per_side, margin_y)], axis=1)
    bottom = np.stack([xs, np.full(per_side, 1.0 - margin_y)], axis=1)
    return np.concatenate([top, bottom], axis=0)


class STNHead(nn.Layer):
    """Predicts ``num_ctrlpoints`` (x, y) control points in [0, 1] from the image."""

    def __init__(self, in_channels: int, num_ctrlpoints: int = 20) -> None:
        super().__init__()
        self.num_ctrlpoints = num_ctrlpoints
        widths = [in_channels, 32, 64, 128, 256, 256, 256]
        layers: list[nn.Layer] = []
        for i in range(6):
            layers.append(_conv3x3_block(widths[i], widths[i + 1]))
            if i < 5:
                layers.append(nn.MaxPool2D(kernel_size=2, stride=2))
        self.stn_convnet = nn.Sequential(*layers)
        self.stn_fc1 = nn.Sequential(
            nn.Linear(512, 512, weight_attr=nn.initializer.Normal(0, 0.001), bias_attr=nn.initializer.Constant(0)),
            nn.BatchNorm1D(512),
            nn.ReLU(),
        )
        identity = _control_points(num_ctrlpoints, 0.01, 0.01).astype("float32").reshape(-1)
        self.stn_fc2 = nn.Linear(
            512,
            num_ctrlpoints * 2,
            weight_attr=nn.initializer.Constant(0.0),
            bias_attr=nn.initializer.Assign(identity),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = F.interpolate(x, size=HEAD_INPUT_SIZE, mode="bilinear", align_corners=True)
        feat = self.stn_fc1(self.stn_convnet(x).flatten(1))
        return self.stn_fc2(0.1 * feat).reshape([-1, self.num_ctrlpoints, 2])


def _tps_repr(points: np.ndarray, ctrl: np.ndarray) -> np.ndarray:
    d2 = ((points[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = 0.5 * d2 * np.log(d2)
    return np.nan_to_num(r, nan=0.0)


class TPSSpatialTransformer(nn.Layer):
    """Warps an image so that predicted control points land on a fixed rectangle of target points."""

    def __init__(self, output_image_size: tuple[int, int], num_control_points: int, margins: tuple[float, float]) -> None:
        super().__init__()
        self.height, self.width = output_image_size
        n = num_control_points
        target = _control_points(n, *margins)
        kernel = np.zeros((n + 3, n + 3))
        kernel[:n, :n] = _tps_repr(target, target)
        kernel[:n, -3] = 1
        kernel[-3, :n] = 1
        kernel[:n, -2:] = target
        kernel[-2:, :n] = target.T
        ys, xs = zip(*itertools.product(range(self.height), range(self.width)))
        coords = np.stack([np.array(xs) / (self.width - 1), np.array(ys) / (self.height - 1)], axis=1)
        coord_repr = np.concatenate([_tps_repr(coords, target), np.ones((len(coords), 1)), coords], axis=1)
        # Buffers that are recomputed from the sizes, never saved: PaddleOCR checkpoints have none.
        self.register_buffer("inverse_kernel", paddle.to_tensor(np.linalg.inv(kernel), "float32"), persistable=False)
        self.register_buffer("coordinate_repr", paddle.to_tensor(coord_repr, "float32"), persistable=False)

    def forward(self, image: paddle.Tensor, source_points: paddle.Tensor) -> paddle.Tensor:
        pad = paddle.zeros([source_points.shape[0], 3, 2], dtype=source_points.dtype)
        mapping = paddle.matmul(self.inverse_kernel, paddle.concat([source_points, pad], axis=1))
        grid = paddle.matmul(self.coordinate_repr, mapping).reshape([-1, self.height, self.width, 2])
        return F.grid_sample(image, 2.0 * grid.clip(0, 1) - 1.0)
