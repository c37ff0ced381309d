"""The FLOP counter agrees with the cost worked out from the layer shapes (reference: TBSRN ~5.1 GFLOP/crop)."""

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


def test_shipped_or_fixture_model(model_dir_any):
    macs = count_macs(model_dir_any / "model.onnx")
    assert macs["Conv"] > 5e8  # the 9x9 head and tail convs alone cost ~0.1 G multiply-adds
