"""Parity and CPU speed of converted models: Paddle Inference vs ONNX Runtime on the same weights.

    .venv/bin/python bench/convert_parity.py [--batches 1 16 64] [--networks TSRN TBSRN]

For each network: random-init weights saved as a PaddleOCR checkpoint, `textsr convert`, then
max |diff| on rendered text crops and the median time per batch of Paddle Inference (the engine
PaddleOCR's predict_sr.py uses, oneDNN on) and of ONNX Runtime (CPU EP, all cores).
Writes bench/results/convert_parity-<device>.md|json.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, table, time_call, write_result  # noqa: E402

CONFIGS = {"TBSRN": "training/configs/sr_telescope.yml", "TSRN": "training/configs/sr_tsrn_transformer_strock.yml"}


def paddle_inference(model_dir: Path):
    from paddle import inference

    cfg = inference.Config(str(model_dir / "inference.json"), str(model_dir / "inference.pdiparams"))
    cfg.disable_gpu()
    cfg.enable_mkldnn()
    cfg.set_cpu_math_library_num_threads(os.cpu_count() or 1)
    cfg.disable_glog_info()
    pred = inference.create_predictor(cfg)
    inp = pred.get_input_handle(pred.get_input_names()[0])
    out = pred.get_output_handle(pred.get_output_names()[0])

    def run(x: np.ndarray) -> np.ndarray:
        inp.reshape(list(x.shape))
        inp.copy_from_cpu(x)
        pred.run()
        return out.copy_to_cpu()

    return run


def random_model(name: str, folder: Path):
    """A random-init network of ``name`` (seed 0), its PaddleOCR checkpoint and its ONNX conversion
    under ``folder``; returns ``(network, manifest)`` (the ONNX file is ``folder / "onnx" / "model.onnx"``)."""
    import paddle

    from convert.pipeline import convert
    from training.networks import build_network, save_checkpoint

    paddle.seed(0)
    net = build_network(name)
    ckpt = save_checkpoint(net, folder / "ckpt.pdparams")
    return net, convert(folder / "onnx", config=Path(__file__).resolve().parent.parent / CONFIGS[name], checkpoint=ckpt, log=lambda s: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--networks", nargs="+", default=["TSRN", "TBSRN"], choices=sorted(CONFIGS))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import paddle

    from convert.verify import render_text_crops
    from service.engine import OrtEngine

    rows, data = [], {}
    for name in args.networks:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            net, manifest = random_model(name, tmp)
            net.eval()
            spec = paddle.static.InputSpec([None, 3, 16, 64], "float32", "x")
            paddle.jit.save(paddle.jit.to_static(net, input_spec=[spec], full_graph=True), str(tmp / "infer" / "inference"))
            pd = paddle_inference(tmp / "infer")
            ort = OrtEngine(tmp / "onnx" / "model.onnx", providers="cpu")
            x = render_text_crops(8, (16, 64), seed=1)
            diff = float(np.abs(np.clip(pd(x), 0, 1) - ort(x)).max())
            data[name] = {"max_abs_diff": diff, "verify_max_abs_diff": manifest.graph().verification.max_abs_diff, "batches": {}}
            for b in args.batches:
                xb = np.concatenate([x] * (b // len(x) + 1))[:b]
                t_pd = median(time_call(lambda f=pd, v=xb: f(v), args.repeat))
                t_ort = median(time_call(lambda f=ort, v=xb: f(v), args.repeat))
                data[name]["batches"][b] = {"paddle_inference_s": t_pd, "onnxruntime_s": t_ort}
                rows.append([name, b, f"{diff:.1e}", f"{1000 * t_pd:.0f}", f"{1000 * t_ort:.0f}", f"{b / t_pd:.1f}", f"{b / t_ort:.1f}", f"{t_pd / t_ort:.2f}x"])
                print(rows[-1], flush=True)
    md = table(["network", "batch", "max abs diff", "Paddle Inference ms/batch", "ORT ms/batch", "Paddle crops/s", "ORT crops/s", "ORT speed-up"], rows)
    print(md)
    print("written:", write_result("convert_parity", md, data))


if __name__ == "__main__":
    main()
