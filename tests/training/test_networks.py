"""The networks have PaddleOCR's exact parameter layout and an export-clean forward pass."""

from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from training.networks import NETWORKS, build_network, build_training_layout
from training.networks.blocks import FoldedConv2D, positional_encoding_2d


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


@pytest.mark.parametrize("kernel,size", [(9, (32, 128)), (3, (5, 7)), (5, (4, 3))])
def test_folded_conv_equals_conv2d_with_its_gradients(kernel, size):
    """The tail conv's fast dygraph form: output, input gradient and parameter gradients equal nn.Conv2D's."""
    paddle.seed(1)
    folded = FoldedConv2D(6, 3, kernel)
    plain = paddle.nn.Conv2D(6, 3, kernel, padding=kernel // 2)
    plain.set_state_dict(folded.state_dict())
    x0 = paddle.randn([2, 6, *size])
    results = []
    for layer in (folded, plain):
        x = x0.clone()
        x.stop_gradient = False
        y = layer(x)
        (y * paddle.arange(y.size, dtype="float32").reshape(y.shape) / y.size).sum().backward()  # position-dependent
        results.append([t.numpy() for t in (y, x.grad, layer.weight.grad, layer.bias.grad)])
    for ours, ref in zip(*results):
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_folded_conv_exports_as_a_plain_convolution():
    """Static graphs (every export) see nn.Conv2D's convolution, not the fold: the ONNX graph is unchanged."""
    net = build_network("TSRN")
    net.eval()
    static = paddle.jit.to_static(net, input_spec=[paddle.static.InputSpec([None, 3, 16, 64], "float32", "x")], full_graph=True)
    ops = {op.name() for op in static.forward.concrete_program.main_program.global_block().ops}
    assert "pd_op.conv2d" in ops and not [op for op in ops if "fold" in op]
    with paddle.no_grad():
        x = paddle.rand([2, 3, 16, 64])
        np.testing.assert_allclose(static(x).numpy(), net(x).numpy(), atol=1e-5)


def test_folded_conv_needs_an_odd_kernel():
    with pytest.raises(Exception, match="odd kernel_size, got 4"):
        FoldedConv2D(4, 3, 4)
