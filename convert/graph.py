"""Turning a saved Paddle program into the ONNX graph the service runs.

paddle2onnx runs in a child process: on an unsupported operator it aborts the whole process
(SIGABRT), so we read its log instead and name the operator. The raw graph is then given the
contract every textsr model has: input ``lr`` [N, 3, h, w], output ``sr`` [N, 3, s*h, s*w]
clipped to [0, 1], one dynamic batch axis ``N``, and the model's facts in ``metadata_props``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from convert.errors import ConversionError, Paddle2OnnxError
from core.manifest import TensorSpec
from core.spec import INPUT_NAME, OUTPUT_NAME

_P2O_SCRIPT = (
    "import sys, paddle2onnx\n"
    "paddle2onnx.export(sys.argv[1], sys.argv[2], sys.argv[3], opset_version=int(sys.argv[4]),"
    " enable_onnx_checker=True, enable_optimize=True)\n"
)
_FP16_SCRIPT = "import sys\nimport paddle2onnx.paddle2onnx_cpp2py_export as c\nc.convert_to_fp16(sys.argv[1], sys.argv[2], True)\n"
_OP_ERROR = re.compile(r"\[OP: ([\w.]+)\]\s*(.*)")


def _run_child(script: str, args: list[str], what: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        found = _OP_ERROR.findall(log)
        if found:
            ops = sorted({op for op, _ in found})
            details = "; ".join(f"{op}: {msg.strip()}" for op, msg in dict(found).items())
            hint = ""
            if any("softplus" in op for op in ops):
                hint = (
                    " PaddleOCR's TBSRN/TSRN write Mish as x*tanh(softplus(x)), which paddle2onnx cannot convert;"
                    " convert from the training checkpoint instead (textsr convert --config CFG --checkpoint X.pdparams),"
                    " which rebuilds the network with F.mish (the same function)."
                )
            raise Paddle2OnnxError(f"{what} failed at operator(s) {', '.join(ops)} ({details}).{hint}", ops)
        tail = "\n".join(line for line in log.splitlines() if line.strip())[-1500:]
        raise ConversionError(f"{what} failed (exit code {proc.returncode}):\n{tail}")
    return log


def paddle_to_onnx(model_file: Path, params_file: Path, out_file: Path, opset: int) -> Path:
    """Convert a saved Paddle program with paddle2onnx (in a child process)."""
    _run_child(_P2O_SCRIPT, [str(model_file), str(params_file), str(out_file), str(opset)], "paddle2onnx")
    if not out_file.is_file():
        raise ConversionError(f"paddle2onnx reported success but wrote no {out_file}")
    return out_file


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        if value.name == old:
            value.name = new


def _set_shape(value: onnx.ValueInfoProto, dims: list[int | str]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def finalize(
    raw_file: Path, out_file: Path, lr_size: tuple[int, int], metadata: dict[str, str], extras: Sequence[TensorSpec] = ()
) -> tuple[Path, int]:
    """Give the raw paddle2onnx graph textsr's I/O contract; returns the path and the scale found. ``extras``: the
    graph's inputs besides the image (a text prior's reading, its drawing), found by name and given their shapes
    (``-1``: the batch axis)."""
    import onnxruntime as ort

    model = onnx.load(str(raw_file))
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: i for i in graph.input if i.name not in initializers}
    extra_names = [e.name for e in extras]
    if len(inputs) != 1 + len(extras) or not set(extra_names) <= set(inputs):
        raise ConversionError(f"expected graph inputs {['the image', *extra_names]}, found {list(inputs)}")
    (image,) = (i for name, i in inputs.items() if name not in extra_names)
    feeds = {image.name: np.zeros((1, 3, *lr_size), np.float32)}
    feeds.update({e.name: np.zeros((1, *e.shape[1:]), np.float32) for e in extras})
    session = ort.InferenceSession(str(raw_file), providers=["CPUExecutionProvider"])
    outs = session.run(None, feeds)
    names = [o.name for o in session.get_outputs()]
    upscaled = [(n, o.shape) for n, o in zip(names, outs) if o.ndim == 4 and o.shape[2] > lr_size[0]]
    if len(upscaled) != 1:
        raise ConversionError(f"expected one upscaled output, got shapes {dict(zip(names, [o.shape for o in outs]))}")
    sr_name, sr_shape = upscaled[0]
    scale = sr_shape[2] // lr_size[0]
    if sr_shape[2] != scale * lr_size[0] or sr_shape[3] != scale * lr_size[1]:
        raise ConversionError(f"output {sr_shape} is not an integer multiple of the input {lr_size}")

    _rename(graph, image.name, INPUT_NAME)
    _set_shape(image, ["N", 3, *lr_size])
    for e in extras:
        _set_shape(inputs[e.name], ["N", *e.shape[1:]])
    raw_out = f"{OUTPUT_NAME}_unclipped"
    _rename(graph, sr_name, raw_out)
    graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), f"sr_clip_{k}") for k, v in (("min", 0.0), ("max", 1.0))])
    graph.node.append(helper.make_node("Clip", [raw_out, "sr_clip_min", "sr_clip_max"], [OUTPUT_NAME], name="sr_clip"))
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 3, sr_shape[2], sr_shape[3]]))
    del graph.value_info[:]
    del model.metadata_props[:]
    for key, value in {**metadata, "scale": str(scale), "lr_shape": f"3,{lr_size[0]},{lr_size[1]}"}.items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=f"textsr.{key}", value=str(value)))
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out_file))
    return out_file, scale


def simplify(path: Path) -> Path:
    """Fold constants and drop dead nodes in place with onnxslim; the result is verified afterwards."""
    import onnxslim

    slim = onnxslim.slim(onnx.load(str(path)))
    onnx.checker.check_model(slim, full_check=True)
    onnx.save(slim, str(path))
    return path


def to_fp16(src: Path, dst: Path) -> Path:
    """Write an fp16 copy of ``src`` (weights and activations; I/O stays float32) with paddle2onnx's converter."""
    _run_child(_FP16_SCRIPT, [str(src), str(dst)], "fp16 conversion")
    model = onnx.load(str(dst))
    for node in model.graph.node:  # the converter casts Resize's unused roi/scales, which makes both look given
        if node.op_type == "Resize" and len(node.input) == 4 and node.input[3]:
            node.input[1], node.input[2] = "", ""
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


def opset_of(path: Path) -> int:
    """The default-domain opset a graph was written for."""
    return next(o.version for o in onnx.load(str(path), load_external_data=False).opset_import if o.domain in ("", "ai.onnx"))
