"""The FLOP counter agrees with the cost worked out from the layer shapes (the shipped TSRN: exactly, 1.75 GFLOP/crop)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.flops import count_macs


def test_counts_a_conv_and_a_matmul(tmp_path):
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float32), "w")
    m = numpy_helper.from_array(np.zeros((16, 5), np.float32), "m")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["y", "shape"], ["z"]),
        helper.make_node("MatMul", ["z", "m"], ["out"]),
    ]
    shape = numpy_helper.from_array(np.array([-1, 16], np.int64), "shape")
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w, m, shape],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    macs = count_macs(path)
    assert macs["Conv"] == 8 * 4 * 4 * 3 * 3 * 3  # outputs x (in_channels x kernel)
    assert macs["MatMul"] == (8 * 4 * 4 // 16) * 5 * 16


def tsrn_macs(h: int = 16, w: int = 64, c: int = 64, blocks: int = 5, scale: int = 2) -> dict[str, int]:
    """TSRN's multiply-adds worked out from its layer shapes (PaddleOCR's defaults: 5 SRBs of 64 channels, each two
    3x3 convs and two 1x1-conv + bidirectional GRU (hidden c/2) pairs, one along the width and one along the height)."""
    px = h * w
    conv = px * c * 3 * 9 * 9  # head: 9x9, 3 -> c
    conv += blocks * (2 * px * c * c * 3 * 3 + 2 * px * c * c)  # SRBs: two 3x3 convs, two 1x1 convs before the GRUs
    conv += px * c * c * 3 * 3  # block7's 3x3 conv
    conv += px * (c * scale * scale) * c * 3 * 3  # upsampling conv to c x scale^2 channels (then pixel shuffle)
    conv += px * scale * scale * 3 * c * 9 * 9  # tail: 9x9, c -> 3, at the output size
    hidden = c // 2
    gru = blocks * 2 * px * 2 * 3 * hidden * (c + hidden)  # two GRUs per SRB, every pixel a step, 2 directions, 3 gates
    return {"Conv": conv, "GRU": gru}


def test_fast_model_counts_what_its_layers_cost(repo_root):
    """The fast model's count (plain TSRN) equals the layer arithmetic exactly, and is the README's "1.75 GFLOP per crop"."""
    from bench.flops import gflops_per_crop

    path = repo_root / "models/gestalt-tsrn-synth-fast/model.onnx"
    assert count_macs(path) == tsrn_macs()  # 688M + 189M multiply-adds
    gflop = gflops_per_crop(path)
    assert gflop == 2 * sum(tsrn_macs().values()) / 1e9
    assert f"Model gestalt-tsrn-synth-fast (TSRN), {gflop:.2f} GFLOP per crop" in (repo_root / "README.md").read_text()


def test_counts_scale_with_batch(model_dir_any):
    macs = count_macs(model_dir_any / "model.onnx")
    assert count_macs(model_dir_any / "model.onnx", batch=3) == {k: 3 * v for k, v in macs.items()}
