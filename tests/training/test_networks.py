"""The networks have PaddleOCR's exact parameter layout and an export-clean forward pass."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from training.networks import NETWORKS, build_network, build_training_layout
from training.networks.blocks import positional_encoding_2d


def _reference_keys(data_dir, name):
    rows = (line.rstrip("\n").split("\t") for line in (data_dir / f"{name.lower()}_state_dict_keys.tsv").open())
    return {k: [int(d) for d in s.strip("[]").split(",")] for k, s in rows}


@pytest.mark.parametrize("name", ["TBSRN", "TSRN"])
def test_training_layout_equals_paddleocr(name, data_dir):
    model = build_training_layout(name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = _reference_keys(data_dir, name)
    assert sorted(set(ref) - set(ours)) == []
    assert sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if v != ref[k]} == {}


@pytest.mark.parametrize("name", ["TBSRN", "TSRN"])
def test_export_model_has_only_sr_keys(name):
    keys = build_network(name).state_dict().keys()
    assert keys and not [k for k in keys if k.startswith(("stn_head", "transformer", "r34_transformer"))]


@pytest.mark.parametrize("name", ["TBSRN", "TSRN"])
@pytest.mark.parametrize("size", [(16, 64), (24, 100), (8, 40)])
def test_forward_any_lr_size(name, size):
    model = build_network(name)
    model.eval()
    out = model(paddle.rand([2, 3, *size])).numpy()
    assert out.shape == (2, 3, 2 * size[0], 2 * size[1])
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0  # tanh output


def test_stn_runs_in_training_mode_only():
    model = build_network("TSRN", stn=True)
    x = paddle.rand([2, 3, 16, 64])
    model.eval()
    a = model(x).numpy()
    model.train()
    model.stn_head.stn_fc2.bias.set_value(model.stn_head.stn_fc2.bias + 0.1)  # move the control points
    model.eval()
    assert np.array_equal(a, model(x).numpy())  # eval: STN skipped, so the change has no effect
    model.train()
    assert model(x).shape == [2, 3, 32, 128]


def test_positional_encoding_matches_paddleocr_formula():
    d, h, w = 64, 16, 64
    half = d // 2
    div = np.exp(np.arange(0, half, 2) * -(math.log(10000.0) / half))
    ref = np.zeros((d, h, w))
    ref[0:half:2] = np.sin(np.arange(w)[:, None] * div).T[:, None, :]
    ref[1:half:2] = np.cos(np.arange(w)[:, None] * div).T[:, None, :]
    ref[half::2] = np.sin(np.arange(h)[:, None] * div).T[:, :, None]
    ref[half + 1 :: 2] = np.cos(np.arange(h)[:, None] * div).T[:, :, None]
    np.testing.assert_allclose(positional_encoding_2d(d, h, w).numpy(), ref, atol=1e-5)


def test_unknown_network_lists_choices():
    with pytest.raises(ValueError, match="TBSRN"):
        build_network("ESRGAN")
    assert set(NETWORKS) == {"TBSRN", "TSRN"}
