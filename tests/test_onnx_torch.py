"""The PyTorch bridge that carries our ONNX graphs to the lent GPU computes what ONNX Runtime computes.

Checked here on the CPU for the shipped model and a converted TBSRN (attention, LayerNorm, MatMul), at
two batch sizes; and after one warm-up call per input shape a forward pass moves nothing from the host
(the precondition for capturing it in a CUDA graph on the GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is in the dev extra (pip install -e '.[dev]')")

from bench.onnx_torch import TorchGraph, export  # noqa: E402
from convert.verify import render_text_crops  # noqa: E402
from service.engine import OrtEngine  # noqa: E402
from tests.conftest import fp16_bound  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README_TOLERANCE = 5e-6
"""The README: "The bridge's outputs equal ONNX Runtime's within 5e-6 for TSRN and TBSRN"."""


def test_readme_states_the_tolerance_tested_here():
    assert f"within {README_TOLERANCE:.0e}".replace("e-0", "e-") in (ROOT / "README.md").read_text()


def check_parity(onnx_path, tmp_path, tol=README_TOLERANCE):
    folder = export(onnx_path, tmp_path / "portable")
    graph, ort = TorchGraph(folder), OrtEngine(onnx_path, providers="cpu")
    for batch in (1, 3):
        x = render_text_crops(batch, (16, 64), seed=batch)
        assert np.abs(graph(torch.as_tensor(x)).numpy() - ort(x)).max() <= tol
    return graph


def test_shipped_model_parity_and_no_host_work_after_warmup(plain_model_dir, tmp_path):
    graph = check_parity(plain_model_dir / "model.onnx", tmp_path)
    x = torch.as_tensor(render_text_crops(2, (16, 64), seed=9))
    graph(x)
    cached = {k: len(v) for k, v in graph._host_cache.items()}
    graph(x)
    assert {k: len(v) for k, v in graph._host_cache.items()} == cached


def test_tbsrn_parity(tmp_path):
    pytest.importorskip("paddle", reason="converting a TBSRN needs paddle (the train extra)")
    from bench.convert_parity import random_model

    random_model("TBSRN", tmp_path / "tbsrn")
    check_parity(tmp_path / "tbsrn" / "onnx" / "model.onnx", tmp_path)


def test_unknown_operator_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("HardSwish", ["x"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 64])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    graph = TorchGraph(export(tmp_path / "m.onnx", tmp_path / "p"))
    with pytest.raises(NotImplementedError, match="HardSwish"):
        graph(torch.zeros(1, 3, 16, 64))


def test_gpu_bench_script_runs_on_cpu(plain_model_dir, tmp_path):
    """bench/gpu_bridge.py, the script the lent GPU runs, works end to end (here on the CPU, tiny sweep), and its
    parity figures are measured against ONNX Runtime (onnxruntime is importable here), within the README's 5e-6 (fp32)
    and within twice the fp16 error the model's conversion recorded (fp16)."""
    import json
    import subprocess
    import sys

    folder = tmp_path / "tsrn"  # exported by the CLI the README shows
    subprocess.run([sys.executable, "bench/onnx_torch.py", "export", str(plain_model_dir / "model.onnx"), str(folder)], check=True, capture_output=True, timeout=120, cwd=ROOT)
    cmd = [sys.executable, "bench/gpu_bridge.py", "--graphs", str(folder), "--device", "cpu", "--settings", "fp32", "fp16",
           "--batches", "1", "--seconds", "0.01", "--out", str(tmp_path / "out")]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300, cwd=ROOT)
    data = json.loads((tmp_path / "out" / "gpu_bridge-cpu.json").read_text())["graphs"]["tsrn"]
    assert data["parity_reference"].startswith("onnxruntime"), data["parity_reference"]  # not the bridge vs itself
    assert data["parity"]["float32"] <= README_TOLERANCE and data["parity"]["float16"] <= fp16_bound(plain_model_dir)
    assert [(r["setting"], r["batch"]) for r in data["rows"]] == [("fp32", 1), ("fp16", 1)]
    assert all(r["crops_per_s"] > 0 for r in data["rows"])
