"""CPU levers, each kept only if quality holds: graph optimisation level, int8 dynamic quantisation,
onnxslim simplification, fp16 graph. One table: crops/s at batch 16, max |diff| against the fp32
graph, and PSNR on the synthetic test set (PaddleOCR's way) against HR.

    .venv/bin/python bench/levers.py [--model-dir models/gestalt-tsrn-synth-fast] [--data train_data/synth/test]

Writes bench/results/levers-<device>.md|json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import median, table, time_call, write_result  # noqa: E402


def session(path: Path, level: str = "all"):
    import onnxruntime as ort

    from service.engine import session_options

    opts = session_options(0)
    opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return lambda x: s.run(["sr"], {"lr": x})[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models" / "gestalt-tsrn-synth-fast")
    ap.add_argument("--data", type=Path, default=ROOT / "train_data" / "synth" / "test")
    ap.add_argument("--max-images", type=int, default=96)
    args = ap.parse_args()

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from training.evaluate import evaluate_splits

    base = args.model_dir / "model.onnx"
    tmp = Path(tempfile.mkdtemp())
    variants = {"fp32, ORT_ENABLE_ALL (shipped)": session(base), "fp32, ORT_ENABLE_BASIC": session(base, "basic")}
    quantize_dynamic(str(base), str(tmp / "int8.onnx"), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "Conv"])
    variants["int8 dynamic (MatMul/Gemm/Conv weights)"] = session(tmp / "int8.onnx")
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(str(base))), str(tmp / "slim.onnx"))
    variants["onnxslim simplified"] = session(tmp / "slim.onnx")
    if (args.model_dir / "model.fp16.onnx").is_file():
        variants["fp16 graph (fp32 I/O)"] = session(args.model_dir / "model.fp16.onnx")

    x = np.random.default_rng(0).random((16, 3, 16, 64), dtype=np.float32)
    ref = variants["fp32, ORT_ENABLE_ALL (shipped)"](x)
    rows, data = [], {}
    for name, run in variants.items():
        cps = 16 / median(time_call(lambda run=run: run(x), 5, warmup=1))
        diff = float(np.abs(run(x) - ref).max())
        psnr = evaluate_splits(run, args.data, args.max_images)["average"]["sr"]["psnr_paddleocr"] if args.data.exists() else float("nan")
        data[name] = {"crops_per_s": cps, "max_abs_diff": diff, "psnr": psnr}
        rows.append([name, f"{cps:.1f}", f"{diff:.2e}", f"{psnr:.2f}"])
        print(rows[-1], flush=True)
    base_cps, base_psnr = data["fp32, ORT_ENABLE_ALL (shipped)"]["crops_per_s"], data["fp32, ORT_ENABLE_ALL (shipped)"]["psnr"]
    for row, d in zip(rows, data.values()):
        row += [f"{d['crops_per_s'] / base_cps:.2f}x", "keep" if d["crops_per_s"] > 1.05 * base_cps and abs(d["psnr"] - base_psnr) <= 0.05 else "no"]
    md = table(["variant", "crops/s (batch 16)", "max abs diff vs fp32", "PSNR dB (test, PaddleOCR's way)", "speed", "worth it (>5% faster, PSNR within 0.05 dB)"], rows)
    fusion_rows, data["tbsrn_fusions"] = tbsrn_fusions(tmp)
    md += "\n\nORT transformer fusions on TBSRN (Text Telescope's attention blocks; random weights, speed and parity only):\n\n"
    md += table(["graph", "crops/s (batch 16)", "max abs diff", "fused operators", "speed"], fusion_rows)
    print(md)
    print("written:", write_result("levers", md, data))


def tbsrn_fusions(tmp: Path) -> tuple[list[list[str]], dict]:
    """``onnxruntime.transformers.optimizer`` (model_type bert, 4 heads of 128) on a converted TBSRN:
    which operators it fuses, and what that does to speed and outputs."""
    from onnxruntime.transformers.optimizer import optimize_model

    from bench.convert_parity import random_model

    random_model("TBSRN", tmp / "tbsrn")
    base = tmp / "tbsrn" / "onnx" / "model.onnx"
    opt = optimize_model(str(base), model_type="bert", num_heads=4, hidden_size=128, opt_level=1)
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(tmp / "tbsrn_fused.onnx"))
    x = np.random.default_rng(0).random((16, 3, 16, 64), dtype=np.float32)
    runs = {"TBSRN as converted": session(base), "TBSRN + transformer fusions": session(tmp / "tbsrn_fused.onnx")}
    ref = runs["TBSRN as converted"](x)
    cps = {k: 16 / median(time_call(lambda r=r: r(x), 3, warmup=1)) for k, r in runs.items()}
    diff = float(np.abs(runs["TBSRN + transformer fusions"](x) - ref).max())
    base_cps = cps["TBSRN as converted"]
    rows = [
        ["TBSRN as converted", f"{base_cps:.1f}", "0", "-", "1.00x"],
        ["TBSRN + transformer fusions", f"{cps['TBSRN + transformer fusions']:.1f}", f"{diff:.1e}", str(fused or "none"), f"{cps['TBSRN + transformer fusions'] / base_cps:.2f}x"],
    ]
    print(rows, flush=True)
    return rows, {"crops_per_s": cps, "max_abs_diff": diff, "fused": fused}


if __name__ == "__main__":
    main()
