"""Run our exported ONNX graphs on PyTorch, for GPU measurements where onnxruntime-gpu cannot travel.

The lent GPU machine has PyTorch and numpy but neither paddle, onnxruntime-gpu nor (reliably) the
``onnx`` package, and only 64 MiB may travel with the tree. So the graph is exported here into a
portable folder (``graph.json``: nodes, attributes, metadata; ``weights.npz``: initializers) and run
there by :class:`TorchGraph`, an interpreter over the ONNX operators our TSRN/TBSRN graphs use:

    .venv/bin/python bench/onnx_torch.py export models/gestalt-tsrn-synth-fast/model.onnx build/gpu/tsrn

Shape arithmetic (``Shape``, ``Slice`` of shapes, ``Concat`` of ints...) runs in numpy on the host and
is cached per input shape, so after one warm-up call a forward pass launches only device kernels and
can be captured in a CUDA graph. Float tensors run in the dtype the graph was built with (fp32/fp16).
Only what our graphs need is implemented; anything else raises ``NotImplementedError`` naming the op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

ONNX_DTYPES = {1: np.float32, 2: np.uint8, 3: np.int8, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def export(onnx_path: str | Path, out: str | Path) -> Path:
    """Write ``graph.json`` + ``weights.npz`` for ``onnx_path`` into ``out`` (needs the ``onnx`` package)."""
    import onnx
    from onnx import helper, numpy_helper

    from bench.flops import gflops_per_crop

    model = onnx.load(str(onnx_path))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights = {f"w{i}": numpy_helper.to_array(t) for i, t in enumerate(model.graph.initializer)}
    names = {t.name: f"w{i}" for i, t in enumerate(model.graph.initializer)}

    def attr(a: Any) -> Any:
        v = helper.get_attribute_value(a)
        if isinstance(v, onnx.TensorProto):
            key = f"a{len(weights)}"
            weights[key] = numpy_helper.to_array(v)
            return {"tensor": key}
        if isinstance(v, bytes):
            return v.decode()
        if isinstance(v, list):
            return [x.decode() if isinstance(x, bytes) else x for x in v]
        return v

    graph = {
        "inputs": [i.name for i in model.graph.input if i.name not in names],
        "outputs": [o.name for o in model.graph.output],
        "initializers": names,
        "nodes": [{"op": n.op_type, "in": list(n.input), "out": list(n.output), "attrs": {a.name: attr(a) for a in n.attribute}} for n in model.graph.node],
        "opset": max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "metadata": {p.key: p.value for p in model.metadata_props},
        "gflop_per_crop": gflops_per_crop(Path(onnx_path)),
        # where the graph came from, so that a machine with onnxruntime can hold the bridge to it (bench/gpu_bridge.py)
        "source": {"path": str(Path(onnx_path).resolve()), "sha256": hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()},
    }
    (out / "graph.json").write_text(json.dumps(graph))
    np.savez(out / "weights.npz", **weights)
    return out


class TorchGraph:
    """An exported graph on a torch device; ``graph(x)`` maps an NCHW tensor to the graph's first output."""

    def __init__(self, folder: str | Path, device: str = "cpu", dtype: str = "float32") -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.dtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
        folder = Path(folder)
        self.graph = json.loads((folder / "graph.json").read_text())
        with np.load(folder / "weights.npz") as npz:
            raw = {k: npz[k] for k in npz.files}
        self.consts: dict[str, Any] = {}
        for name, key in self.graph["initializers"].items():
            self.consts[name] = self._const(raw[key])
        self.attr_tensors = {k: v for k, v in raw.items() if k.startswith("a")}
        for node in self.graph["nodes"]:  # paddle2onnx passes weights through Identity nodes
            if node["op"] == "Identity" and node["in"][0] in self.consts:
                self.consts[node["out"][0]] = self.consts[node["in"][0]]
        self.grus = {}
        for i, node in enumerate(self.graph["nodes"]):
            if node["op"] == "GRU":
                self.grus[i] = self._build_gru(node)
        self._host_cache: dict[tuple, dict[str, Any]] = {}

    def _const(self, arr: np.ndarray) -> Any:
        if np.issubdtype(arr.dtype, np.floating):
            return self.torch.as_tensor(arr).to(self.device, self.dtype)
        return arr  # integer data stays on the host: it is shape arithmetic

    def _build_gru(self, node: dict) -> Any:
        torch = self.torch
        a = node["attrs"]
        if a.get("linear_before_reset", 0) != 1 or a.get("layout", 0) != 0:
            raise NotImplementedError("GRU with linear_before_reset=0 or layout=1")
        if len(node["in"]) > 4 and node["in"][4]:
            raise NotImplementedError("GRU with sequence_lens")
        w, r = (self.consts[n] for n in node["in"][1:3])
        dirs, three_h, inp = w.shape
        hidden = three_h // 3
        gru = torch.nn.GRU(inp, hidden, bidirectional=dirs == 2).to(self.device, self.dtype)
        reorder = lambda t: torch.cat([t[hidden : 2 * hidden], t[:hidden], t[2 * hidden :]])  # noqa: E731 (z r h -> r z n)
        b = self.consts[node["in"][3]] if len(node["in"]) > 3 and node["in"][3] else torch.zeros(dirs, 6 * hidden, device=self.device, dtype=self.dtype)
        with torch.no_grad():
            for d in range(dirs):
                sfx = "_reverse" if d else ""
                getattr(gru, f"weight_ih_l0{sfx}").copy_(reorder(w[d]))
                getattr(gru, f"weight_hh_l0{sfx}").copy_(reorder(r[d]))
                getattr(gru, f"bias_ih_l0{sfx}").copy_(reorder(b[d, : 3 * hidden]))
                getattr(gru, f"bias_hh_l0{sfx}").copy_(reorder(b[d, 3 * hidden :]))
        gru.flatten_parameters()
        return gru.eval()

    # -- running ---------------------------------------------------------------------------------------
    def __call__(self, x: Any) -> Any:
        torch = self.torch
        key = tuple(x.shape)
        cache = self._host_cache.setdefault(key, {})
        env: dict[str, Any] = {**self.consts, self.graph["inputs"][0]: x}
        with torch.inference_mode():
            for i, node in enumerate(self.graph["nodes"]):
                ins = [env[n] if n else None for n in node["in"]]
                if all(v is None or isinstance(v, np.ndarray) for v in ins) and node["op"] != "GRU":
                    hit = cache.get(node["out"][0])
                    if hit is None:  # host arithmetic, once per input shape
                        hit = cache[node["out"][0]] = self._host(node, ins)
                    outs = hit
                else:
                    ins = [self._dev(v, cache, f"{i}:{j}") if isinstance(v, np.ndarray) and self._data_input(node, j) else v for j, v in enumerate(ins)]
                    outs = self._run(i, node, ins)
                for name, v in zip(node["out"], outs if isinstance(outs, tuple) else (outs,)):
                    if name:
                        env[name] = v
        return env[self.graph["outputs"][0]]

    @staticmethod
    def _data_input(node: dict, j: int) -> bool:
        """Whether input ``j`` of ``node`` is tensor data (moved to the device) rather than a shape/index/axes input."""
        op = node["op"]
        if op in ("Reshape", "Expand", "Slice", "Squeeze", "Unsqueeze", "Resize", "ReduceMean", "ReduceSum", "Tile", "Pad"):
            return j == 0 or (op == "Pad" and j == 2)
        if op == "Pow":
            return j == 0
        return True

    def _dev(self, v: np.ndarray, cache: dict, key: str) -> Any:
        """A host array used as tensor data, moved to the device once per input shape."""
        hit = cache.get(("dev", key))
        if hit is None:
            t = self.torch.as_tensor(v).to(self.device)
            hit = cache[("dev", key)] = t.to(self.dtype) if t.is_floating_point() else t
        return hit

    def _host(self, node: dict, ins: list) -> Any:
        op, a = node["op"], node["attrs"]
        x = ins[0] if ins else None
        if op == "Constant":
            v = a.get("value")
            return self.attr_tensors[v["tensor"]] if isinstance(v, dict) else np.asarray(a.get("value_int", a.get("value_ints", a.get("value_float"))))
        if op == "Identity":
            return x
        if op in _NP_BINARY:
            return _NP_BINARY[op](x, ins[1])
        if op == "Cast":
            return x.astype(ONNX_DTYPES[a["to"]])
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in ins], axis=a["axis"])
        if op == "Unsqueeze":
            return np.expand_dims(x, tuple(int(i) for i in ins[1]))
        if op == "Squeeze":
            return np.squeeze(x, tuple(int(i) for i in ins[1])) if len(ins) > 1 and ins[1] is not None else np.squeeze(x)
        if op == "Gather":
            return np.take(x, ins[1], axis=a.get("axis", 0))
        if op == "Slice":
            return x[_slices(x.ndim, *ins[1:])]
        if op == "Reshape":
            return x.reshape(_reshape_dims(x.shape, ins[1]))
        if op == "ConstantOfShape":
            v = self.attr_tensors[a["value"]["tensor"]] if "value" in a else np.zeros(1, np.float32)
            return np.full(tuple(int(d) for d in ins[0]), v.reshape(-1)[0], v.dtype)
        if op == "Range":
            return np.arange(ins[0], ins[1], ins[2])
        if op == "Expand":
            return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(d) for d in ins[1]))).copy()
        if op == "Neg":
            return -x
        raise NotImplementedError(f"host op {op}")

    def _run(self, i: int, node: dict, ins: list) -> Any:
        torch = self.torch
        F = torch.nn.functional
        op, a = node["op"], node["attrs"]
        x = ins[0]
        if op == "Identity":
            return x
        if op == "Shape":
            return np.asarray(x.shape, np.int64)[a.get("start", 0) : a.get("end", x.ndim)]
        if op in ("Add", "Sub", "Mul", "Div"):
            b = ins[1]
            return {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div}[op](x, b)
        if op == "Pow":
            e = ins[1]  # a device tensor (float initializer) or a host scalar: no host sync either way
            return torch.pow(x, float(e.reshape(-1)[0]) if isinstance(e, np.ndarray) else e)
        if op in _TORCH_UNARY:
            return getattr(torch, _TORCH_UNARY[op])(x)
        if op == "Softplus":
            return F.softplus(x)
        if op == "PRelu":
            w = ins[1]
            return torch.where(x >= 0, x, x * w)
        if op == "Clip":
            lo, hi = (ins + [None, None])[1:3]  # device tensors: no host sync, so a CUDA graph can hold it
            return torch.clamp(x, lo.reshape(()) if lo is not None else None, hi.reshape(()) if hi is not None else None)
        if op == "Conv":
            pads = a.get("pads", [0, 0, 0, 0])
            if pads[:2] != pads[2:]:
                raise NotImplementedError("asymmetric Conv padding")
            return F.conv2d(x, ins[1], ins[2] if len(ins) > 2 else None, a.get("strides", [1, 1]), pads[:2], a.get("dilations", [1, 1]), a.get("group", 1))
        if op == "BatchNormalization":
            return F.batch_norm(x, ins[3], ins[4], ins[1], ins[2], False, 0.0, a.get("epsilon", 1e-5))
        if op == "Transpose":
            return x.permute(*a["perm"])
        if op == "Reshape":
            return x.reshape(_reshape_dims(tuple(x.shape), ins[1]))
        if op == "Flatten":
            axis = a.get("axis", 1)
            return x.reshape(int(np.prod(x.shape[:axis])), -1)
        if op == "Expand":
            return x.expand(*np.broadcast_shapes(tuple(x.shape), tuple(int(d) for d in ins[1])))
        if op == "Slice":
            return x[_slices(x.ndim, *ins[1:])]
        if op == "Squeeze":
            dims = [int(d) % x.ndim for d in ins[1]] if len(ins) > 1 and ins[1] is not None else [d for d, s in enumerate(x.shape) if s == 1]
            for d in sorted(dims, reverse=True):
                x = x.squeeze(d)
            return x
        if op == "Unsqueeze":
            for d in sorted(int(d) % (x.ndim + len(ins[1])) for d in ins[1]):
                x = x.unsqueeze(d)
            return x
        if op == "Concat":
            return torch.cat(ins, dim=a["axis"])
        if op == "Gather":
            axis, idx = a.get("axis", 0) % x.ndim, ins[1]
            return torch.index_select(x, axis, idx.reshape(-1)).reshape(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])
        if op == "MatMul":
            return torch.matmul(x, ins[1])
        if op == "Gemm":
            A = x.t() if a.get("transA", 0) else x
            B = ins[1].t() if a.get("transB", 0) else ins[1]
            y = a.get("alpha", 1.0) * (A @ B)
            return y + a.get("beta", 1.0) * ins[2] if len(ins) > 2 and ins[2] is not None else y
        if op == "Softmax":
            return torch.softmax(x, dim=a.get("axis", -1))
        if op in ("ReduceMean", "ReduceSum"):
            axes = a.get("axes") if "axes" in a else [int(v) for v in np.atleast_1d(ins[1])]
            return getattr(x, "mean" if op == "ReduceMean" else "sum")(dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))
        if op == "Size":
            return np.asarray(x.numel(), np.int64)
        if op in ("Max", "Min"):
            fn = torch.maximum if op == "Max" else torch.minimum
            out = ins[0]
            for v in ins[1:]:
                out = fn(out, v)
            return out
        if op == "DepthToSpace":
            n, c, h, w = x.shape
            s = a["blocksize"]
            if a.get("mode", "DCR") == "CRD":
                return F.pixel_shuffle(x, s)
            return x.reshape(n, s, s, c // (s * s), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (s * s), h * s, w * s)
        if op == "Resize":
            return self._resize(node, ins)
        if op == "GRU":
            gru = self.grus[i]
            h0 = ins[5] if len(ins) > 5 and ins[5] is not None else None
            y, h = gru(x, h0)
            seq, batch, _ = y.shape
            return y.reshape(seq, batch, h.shape[0], -1).permute(0, 2, 1, 3), h
        if op == "Cast":
            to = ONNX_DTYPES[a["to"]]
            return x.to(self.dtype) if np.issubdtype(to, np.floating) else x.to(getattr(torch, np.dtype(to).name))
        raise NotImplementedError(f"ONNX op {op} is not supported by the torch bridge")

    def _resize(self, node: dict, ins: list) -> Any:
        F = self.torch.nn.functional
        a = node["attrs"]
        mode, ctm = a.get("mode", "nearest"), a.get("coordinate_transformation_mode", "half_pixel")
        x = ins[0]
        sizes = ins[3] if len(ins) > 3 and ins[3] is not None and ins[3].size else None
        if sizes is None:
            scales = ins[2]
            sizes = [int(np.floor(d * s)) for d, s in zip(x.shape, scales)]
        size = [int(d) for d in sizes[2:]]
        if mode == "cubic" and ctm in ("half_pixel", "pytorch_half_pixel") and abs(a.get("cubic_coeff_a", -0.75) + 0.75) < 1e-6 and not a.get("exclude_outside", 0):
            return F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        if mode == "linear" and ctm in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        raise NotImplementedError(f"Resize mode={mode} coordinate_transformation_mode={ctm}")


_NP_BINARY = {"Max": np.maximum, "Min": np.minimum, "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": lambda a, b: a // b if np.issubdtype(np.asarray(a).dtype, np.integer) else a / b, "Equal": np.equal}
_TORCH_UNARY = {"Tanh": "tanh", "Relu": "relu", "Sigmoid": "sigmoid", "Sqrt": "sqrt", "Erf": "erf", "Exp": "exp", "Neg": "neg", "Abs": "abs"}


def _slices(ndim: int, starts: np.ndarray, ends: np.ndarray, axes: np.ndarray | None = None, steps: np.ndarray | None = None) -> tuple:
    out = [slice(None)] * ndim
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st <= 0:
            raise NotImplementedError("Slice with a non-positive step")
        big = np.iinfo(np.int64).max
        out[int(ax) % ndim] = slice(int(s), None if int(e) >= big // 2 else int(e), int(st))
    return tuple(out)


def _reshape_dims(shape: tuple, target: np.ndarray) -> list[int]:
    return [shape[i] if int(d) == 0 else int(d) for i, d in enumerate(target)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="ONNX file -> portable folder (graph.json + weights.npz)")
    ex.add_argument("onnx", type=Path)
    ex.add_argument("out", type=Path)
    args = ap.parse_args()
    print("written:", export(args.onnx, args.out))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
