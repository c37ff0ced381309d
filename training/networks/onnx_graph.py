"""An ONNX graph run by Paddle, frozen and differentiable: how training looks through the service's recognizer.

The service reads text with an ONNX model (PP-OCRv6 small from the rapidocr wheel). To train the SR
network *against that same model*, :class:`OnnxGraph` executes the ONNX file's nodes with Paddle
operators, so gradients flow from the recognizer's output back into the image fed to it. The
weights are the file's initializers, held as non-persistable buffers: they never receive a
gradient and an optimiser never sees them. Nothing is generated or downloaded; the file is read
as it is. Built with ``trainable=True`` the same graph becomes a network to fine-tune (a text prior's generator):
its weights (float initializers with more than one value, BatchNorm's running statistics excepted) are parameters,
saved in its state dict, and :meth:`OnnxGraph.export` writes the file back with them.

Shape arithmetic (``Shape``, ``Slice`` of shapes, ``Concat`` of ints ...) runs in numpy, tensors in
Paddle. Only the operators such recognizers use are implemented; any other raises
``NotImplementedError`` naming it, when the graph is loaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn

from core.errors import DataError

Value = Any  # np.ndarray (host shape arithmetic) or paddle.Tensor


def _is_host(*values: Value) -> bool:
    return all(isinstance(v, np.ndarray) for v in values)


def _tensor(v: Value) -> paddle.Tensor:
    return v if isinstance(v, paddle.Tensor) else paddle.to_tensor(np.asarray(v, np.float32))


def _binary(np_fn: Callable, pd_fn: Callable) -> Callable:
    def op(inputs: list[Value], attrs: dict[str, Any]) -> Value:
        a, b = inputs
        if _is_host(a, b):
            return np.asarray(np_fn(a, b)).astype(np.result_type(a, b))
        return pd_fn(_tensor(a), _tensor(b))

    return op


def _host_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a // b if np.issubdtype(np.result_type(a, b), np.integer) else a / b


def _same_pad(x: paddle.Tensor, attrs: dict[str, Any], value: float) -> paddle.Tensor:
    """Apply ONNX ``auto_pad`` SAME_UPPER / SAME_LOWER explicitly (explicit ``pads`` are left to the op)."""
    auto_pad = attrs.get("auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", "VALID"):
        return x
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise NotImplementedError(f"auto_pad={auto_pad}")
    kernel, strides = attrs["kernel_shape"], attrs.get("strides", [1] * len(attrs["kernel_shape"]))
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, strides):
        total = max(0, (-(-size // s) - 1) * s + k - size)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
    return F.pad(x, [pads[1][0], pads[1][1], pads[0][0], pads[0][1]], value=value)


def _pads(attrs: dict[str, Any]) -> list[int]:
    """ONNX ``pads`` [top, left, bottom, right] -> Paddle's [top, bottom, left, right] (zero under auto_pad)."""
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    return [top, bottom, left, right]


def _conv(inputs: list[Value], attrs: dict[str, Any]) -> paddle.Tensor:
    x, w = _same_pad(inputs[0], attrs, 0.0), inputs[1]
    b = inputs[2].reshape([-1]) if len(inputs) > 2 else None  # [C], or [1, C, 1, 1] from a fused Add (_fuse)
    return F.conv2d(
        x, w, b, stride=attrs.get("strides", [1, 1]), padding=_pads(attrs),
        dilation=attrs.get("dilations", [1, 1]), groups=attrs.get("group", 1),
    )


def _max_pool(inputs: list[Value], attrs: dict[str, Any]) -> paddle.Tensor:
    x = _same_pad(inputs[0], attrs, -np.inf)  # -inf: the maximum never picks padding
    return F.max_pool2d(
        x, attrs["kernel_shape"], attrs.get("strides", [1, 1]), padding=_pads(attrs), ceil_mode=bool(attrs.get("ceil_mode", 0))
    )


def _avg_pool(inputs: list[Value], attrs: dict[str, Any]) -> paddle.Tensor:
    if attrs.get("auto_pad", "NOTSET") != "NOTSET":
        raise NotImplementedError("AveragePool with auto_pad")
    return F.avg_pool2d(
        inputs[0], attrs["kernel_shape"], attrs.get("strides", [1, 1]), padding=_pads(attrs),
        ceil_mode=bool(attrs.get("ceil_mode", 0)), exclusive=not attrs.get("count_include_pad", 0),
    )


def _slice(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x, starts, ends = inputs[0], inputs[1], inputs[2]
    ndim = len(x.shape)
    axes = inputs[3] if len(inputs) > 3 else np.arange(len(starts))
    steps = inputs[4] if len(inputs) > 4 else np.ones(len(starts), np.int64)
    index = [slice(None)] * ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[int(a) % ndim] = slice(int(s), int(e), int(st))
    if isinstance(x, np.ndarray):
        return x[tuple(index)]
    if any(int(st) != 1 for st in steps):
        raise NotImplementedError("Slice of a tensor with steps != 1")
    dims = [int(a) % ndim for a in axes]
    size = [x.shape[d] for d in dims]
    return paddle.slice(x, dims, [min(int(s), n) for s, n in zip(starts, size)], [min(int(e), n) for e, n in zip(ends, size)])


def _squeeze(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x = inputs[0]
    axes = [int(a) for a in (attrs.get("axes") if "axes" in attrs else inputs[1])]
    return np.squeeze(x, tuple(axes)) if isinstance(x, np.ndarray) else paddle.squeeze(x, axes)


def _unsqueeze(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x = inputs[0]
    axes = [int(a) for a in (attrs.get("axes") if "axes" in attrs else inputs[1])]
    return np.expand_dims(x, tuple(axes)) if isinstance(x, np.ndarray) else paddle.unsqueeze(x, axes)


def _concat(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    if _is_host(*inputs):
        return np.concatenate(inputs, axis=attrs["axis"])
    return paddle.concat([_tensor(v) for v in inputs], axis=attrs["axis"])


def _reshape(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x, shape = inputs[0], [int(d) for d in inputs[1]]
    if isinstance(x, np.ndarray):
        shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x.reshape(shape)
    return paddle.reshape(x, shape)  # 0 copies the input's dimension, as in ONNX (allowzero=0)


def _transpose(inputs: list[Value], attrs: dict[str, Any]) -> Value:
    x, perm = inputs[0], attrs.get("perm")
    return np.transpose(x, perm) if isinstance(x, np.ndarray) else paddle.transpose(x, perm or list(range(x.ndim))[::-1])


def _softmax(inputs: list[Value], attrs: dict[str, Any], opset: int = 13) -> paddle.Tensor:
    x = inputs[0]
    axis = attrs.get("axis", 1 if opset < 13 else -1) % x.ndim
    if opset < 13 and axis != x.ndim - 1:  # opset 11 flattens from `axis` on; same as last-axis only there
        raise NotImplementedError(f"Softmax (opset {opset}) over axis {axis} of a {x.ndim}-D tensor")
    return F.softmax(x, axis=axis)


def _reduce_mean(inputs: list[Value], attrs: dict[str, Any]) -> paddle.Tensor:
    return paddle.mean(inputs[0], axis=attrs.get("axes"), keepdim=bool(attrs.get("keepdims", 1)))


def _batch_norm(inputs: list[Value], attrs: dict[str, Any]) -> paddle.Tensor:
    x, scale, bias, mean, var = inputs
    return F.batch_norm(x, mean, var, scale, bias, training=False, epsilon=attrs.get("epsilon", 1e-5))


def _shape(inputs: list[Value], attrs: dict[str, Any]) -> np.ndarray:
    return np.asarray(inputs[0].shape, np.int64)


def _fuse(plan: list, const: Callable[[str], np.ndarray | None], keep: set[str]) -> list:
    """The same computation in fewer, larger operators (a third less time for PP-OCRv6 small's forward + backward).

    - ``Conv`` without bias -> ``Add`` of a per-channel constant ``[1, C, 1, 1]``: one ``Conv`` with that bias;
    - GELU written out as ``x * (erf(x / sqrt 2) + 1) * 0.5`` (paddle2onnx's export): one ``Gelu``.

    ``const(name)``: a float initializer's values, or None. An intermediate value is fused away only when
    nothing else reads it and it is not one of ``keep`` (the values asked for).
    """
    consumers: dict[str, list[int]] = {}
    for i, (_, ins, _, _) in enumerate(plan):
        for name in ins:
            consumers.setdefault(name, []).append(i)

    def sole(value: str, op: str) -> int | None:
        users = consumers.get(value, [])
        return users[0] if len(users) == 1 and value not in keep and plan[users[0]][0] == op else None

    def other(i: int, value: str) -> str:
        a, b = plan[i][1]
        return b if a == value else a

    def scalar(name: str, value: float) -> bool:
        c = const(name)
        return c is not None and c.size == 1 and abs(float(c.reshape(())) - value) <= 1e-6 * abs(value)

    fused, dropped = list(plan), set()
    for i, (op, ins, outs, attrs) in enumerate(plan):
        if op == "Conv" and len(ins) == 2 and (j := sole(outs[0], "Add")) is not None:
            bias, weight = const(other(j, outs[0])), const(ins[1])
            if bias is not None and weight is not None and bias.shape == (1, weight.shape[0], 1, 1):
                fused[i] = (op, [*ins, other(j, outs[0])], plan[j][2], attrs)
                dropped.add(j)
        elif op == "Div" and scalar(ins[1], 2**0.5):  # x / sqrt 2 -> Erf -> + 1 -> * x -> * 0.5
            x, value, chain = ins[0], outs[0], []
            for want, operand_ok in (("Erf", None), ("Add", lambda o: scalar(o, 1.0)), ("Mul", lambda o, x=x: o == x),
                                     ("Mul", lambda o: scalar(o, 0.5))):
                j = sole(value, want)
                if j is None or (operand_ok is not None and not operand_ok(other(j, value))):
                    break
                chain.append(j)
                value = plan[j][2][0]
            else:
                fused[i] = ("Gelu", [x], [value], {})
                dropped.update(chain)
    return [node for i, node in enumerate(fused) if i not in dropped]


OPS: dict[str, Callable[[list[Value], dict[str, Any]], Value]] = {
    "Identity": lambda i, a: i[0],
    "Add": _binary(np.add, paddle.add),
    "Sub": _binary(np.subtract, paddle.subtract),
    "Mul": _binary(np.multiply, paddle.multiply),
    "Div": _binary(_host_div, paddle.divide),
    "Pow": _binary(np.power, paddle.pow),
    "MatMul": lambda i, a: paddle.matmul(_tensor(i[0]), _tensor(i[1])),
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "Relu": lambda i, a: F.relu(i[0]),
    "Sigmoid": lambda i, a: F.sigmoid(i[0]),
    "HardSigmoid": lambda i, a: F.hardsigmoid(i[0], slope=a.get("alpha", 0.2), offset=a.get("beta", 0.5)),
    "Erf": lambda i, a: paddle.erf(i[0]),
    "Gelu": lambda i, a: F.gelu(i[0], approximate=a.get("approximate", "none") == "tanh"),
    "Sqrt": lambda i, a: paddle.sqrt(i[0]),
    "ReduceMean": _reduce_mean,
    "MaxPool": _max_pool,
    "AveragePool": _avg_pool,
    "Shape": _shape,
    "Slice": _slice,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": _concat,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Softmax": _softmax,  # its axis default and meaning depend on the opset: bound per graph when loaded
}


class OnnxGraph(nn.Layer):
    """``graph(x) -> tensor``: the ONNX file's computation in Paddle, weights frozen (or trainable).

    Args:
        path: the ``.onnx`` file.
        output: name of the value to return (default: the graph's first output). Any intermediate
            value may be named, e.g. the logits that feed a final ``Softmax``.
        trainable: the weights are parameters (``w{i}`` by initializer order) instead of constants.
    """

    def __init__(self, path: str | Path, output: str | None = None, trainable: bool = False) -> None:
        super().__init__()
        import onnx
        from onnx import helper, numpy_helper

        model = onnx.load(str(path))
        graph = model.graph
        self.opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        self.metadata = {p.key: p.value for p in model.metadata_props}
        self.constants: dict[str, Value] = {}
        self._buffers_by_value: dict[str, str] = {}
        statistics = {n.input[k] for n in graph.node if n.op_type == "BatchNormalization" for k in (3, 4)}
        for i, init in enumerate(graph.initializer):
            array = numpy_helper.to_array(init)
            if np.issubdtype(array.dtype, np.floating):
                buffer = f"w{i}"
                if trainable and array.size > 1 and init.name not in statistics:
                    weight = self.create_parameter(list(array.shape), dtype="float32")
                    weight.set_value(array.astype(np.float32))
                    self.add_parameter(buffer, weight)
                else:
                    self.register_buffer(buffer, paddle.to_tensor(array.astype(np.float32)), persistable=False)
                self._buffers_by_value[init.name] = buffer
            else:
                self.constants[init.name] = array
        nodes: list[tuple[str, list[str], list[str], dict[str, Any]]] = []
        self._ops = {**OPS, "Softmax": functools.partial(_softmax, opset=self.opset)}
        for node in graph.node:
            if node.op_type not in self._ops:
                raise NotImplementedError(f"{path}: ONNX operator {node.op_type} is not supported by OnnxGraph")
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
            nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        known = {i.name for i in graph.input} | set(self.constants) | set(self._buffers_by_value)
        self.input_name = next(i.name for i in graph.input if i.name not in self._buffers_by_value and i.name not in self.constants)
        self._all_nodes, self._known, self.path = nodes, known, Path(path)
        self._plans: dict[tuple[str, ...], list] = {}
        """Per tuple of requested values: the nodes they need, in graph order."""
        self.set_output(output or graph.output[0].name)

    def set_output(self, name: str) -> None:
        """Return the value ``name`` from now on, running only the nodes it depends on."""
        self.require(name)
        self.output_name = name

    def require(self, name: str) -> None:
        """Raise :class:`DataError` unless the graph has a value called ``name``."""
        if name not in self._known and self.producer_of(name) is None:
            raise DataError(f"{self.path}: no value named {name!r} in the graph")

    @staticmethod
    def _needed(nodes: list, outputs: tuple[str, ...]) -> list:
        """The nodes the ``outputs`` depend on, in graph order."""
        wanted, keep = set(outputs), []
        for node in reversed(nodes):
            if wanted & set(node[2]):
                keep.append(node)
                wanted |= set(node[1])
        return keep[::-1]

    def _float_constant(self, name: str) -> np.ndarray | None:
        buffer = self._buffers_by_value.get(name)
        return None if buffer is None else getattr(self, buffer).numpy()

    def export(self, path: str | Path) -> Path:
        """Write the ONNX file this graph was read from, with the current values of its parameters (a fine-tuned copy)."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(self.path))
        parameters = dict(self.named_parameters())
        for init in model.graph.initializer:
            buffer = self._buffers_by_value.get(init.name)
            if buffer in parameters:
                init.CopyFrom(numpy_helper.from_array(parameters[buffer].numpy().astype(np.float32), init.name))
        onnx.save(model, str(path))
        return Path(path)

    def producer_of(self, name: str) -> tuple[str, list[str]] | None:
        """``(op_type, inputs)`` of the node that computes ``name``."""
        return next(((op, ins) for op, ins, outs, _ in self._all_nodes if name in outs), None)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.values(x, (self.output_name,))[self.output_name]

    def values(self, x: paddle.Tensor, names: tuple[str, ...]) -> dict[str, paddle.Tensor]:
        """The values ``names`` (the output, intermediate features) from one pass over the nodes they need."""
        if names not in self._plans:
            for name in names:
                self.require(name)
            self._plans[names] = _fuse(self._needed(self._all_nodes, names), self._float_constant, set(names))
        values: dict[str, Value] = dict(self.constants)
        values.update({k: getattr(self, b) for k, b in self._buffers_by_value.items()})
        values[self.input_name] = x
        for op, ins, outs, attrs in self._plans[names]:
            values[outs[0]] = self._ops[op]([values[n] for n in ins if n], attrs)  # "" marks an omitted optional input
        return {name: values[name] for name in names}
