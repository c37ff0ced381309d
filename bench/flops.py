"""Multiply-adds of an ONNX graph, counted from its nodes and inferred shapes (batch 1).

Counts Conv, ConvTranspose, MatMul, Gemm and GRU (the layers that carry the cost); element-wise
ops, norms and softmax are left out (a few percent). FLOPs = 2 x multiply-adds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference


def _dims(vi) -> list[int]:
    return [d.dim_value if d.dim_value > 0 else 1 for d in vi.type.tensor_type.shape.dim]


def count_macs(path: str | Path, batch: int = 1) -> dict[str, int]:
    """Multiply-adds per op type for one forward pass at ``batch``. Shapes are inferred at a batch of at least 2 and the
    counts scaled (they are linear in the batch): at 1, an axis-less Squeeze (the text-prior graph has them) drops the
    batch axis too, and shape inference then gives a GRU a wrong sequence."""
    model = onnx.load(str(path))
    graph = model.graph
    inferred_batch = max(batch, 2)
    for value in list(graph.input) + list(graph.output):
        dim = value.type.tensor_type.shape.dim
        if dim and not dim[0].dim_value:
            dim[0].dim_value = inferred_batch
    inferred = shape_inference.infer_shapes(model)
    shapes = {vi.name: _dims(vi) for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    shapes.update({init.name: list(init.dims) for init in graph.initializer})
    macs: dict[str, int] = {}
    for node in inferred.graph.node:
        op = node.op_type
        if op == "Conv":
            out = shapes.get(node.output[0])
            w = shapes.get(node.input[1])
            if out and w:
                macs[op] = macs.get(op, 0) + int(np.prod(out)) * int(np.prod(w[1:]))
        elif op in ("MatMul", "Gemm"):
            a = shapes.get(node.input[0])
            out = shapes.get(node.output[0])
            if a and out:
                k = a[-1] if op == "MatMul" or not any(at.name == "transA" and at.i for at in node.attribute) else a[-2]
                macs[op] = macs.get(op, 0) + int(np.prod(out)) * int(k)
        elif op == "GRU":
            x, w, r = (shapes.get(n) for n in node.input[:3])
            if x and w and r:
                seq, bsz, inp = x
                dirs, gates_h, hidden = r
                macs[op] = macs.get(op, 0) + seq * bsz * dirs * gates_h * (inp + hidden)
    return {op: n * batch // inferred_batch for op, n in macs.items()}


def gflops_per_crop(path: str | Path) -> float:
    return 2 * sum(count_macs(path).values()) / 1e9


if __name__ == "__main__":
    for p in sys.argv[1:]:
        m = count_macs(p)
        print(p, {k: f"{v / 1e6:.0f}M" for k, v in m.items()}, f"total {2 * sum(m.values()) / 1e9:.2f} GFLOP per crop")
