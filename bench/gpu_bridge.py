"""GPU throughput of our exported graphs through the PyTorch bridge: fp32, fp16, fp16 + CUDA graph, batch sweep.

Prepared here, run on the lent GPU machine (PyTorch + numpy there; no onnxruntime-gpu, no paddle):

    .venv/bin/python bench/onnx_torch.py export models/gestalt-tsrn-synth-fast/model.onnx build/gpu/tsrn   # here
    python bench/gpu_bridge.py --graphs build/gpu/tsrn build/gpu/tbsrn --out "$OUT"                    # there

For every graph and setting: crops/s per batch size, and the fraction of the GPU's dense FLOP peak for
that precision (fp32: CUDA cores; fp16: tensor cores) given the graph's FLOPs per crop. Parity: the
device's fp32 and fp16 outputs against ONNX Runtime (CPU) on the source ONNX file when onnxruntime is
importable and the file named in graph.json is there with its sha256; otherwise against the bridge on the
CPU in fp32 (which tests/test_onnx_torch.py holds to ONNX Runtime within 3e-6). The JSON says which
(``parity_reference``). A setting that fails (e.g. a capture error) is a row with the error, not a crash.
Writes <out>/gpu_bridge-<gpu>.md|json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import table  # noqa: E402
from bench.onnx_torch import TorchGraph  # noqa: E402

SETTINGS = {"fp32": "float32", "fp16": "float16", "fp16 + CUDA graph": "float16"}
# Dense peaks in TFLOP/s (vendor data sheets, SXM parts): fp32 on CUDA cores, fp16 on tensor cores.
PEAKS = {"H200": (66.9, 989.4), "H100": (66.9, 989.4), "A100": (19.5, 312.0), "L4": (30.3, 121.0)}


def peak_tflops(name: str, half: bool) -> float | None:
    for key, (fp32, fp16) in PEAKS.items():
        if key in name:
            return fp16 if half else fp32
    return None


def timed(fn, seconds: float, sync) -> float:
    """Seconds per call after warm-up, synchronised."""
    for _ in range(3):
        fn()
    sync()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 5:
        fn()
        n += 1
    sync()
    return (time.perf_counter() - start) / n


def with_cuda_graph(graph: TorchGraph, x):
    """Capture one forward pass for ``x``'s shape; returns a replay function."""
    import torch

    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            graph(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    cg = torch.cuda.CUDAGraph()
    with torch.cuda.graph(cg):
        static_y = graph(static_x)

    def run():
        static_x.copy_(x)
        cg.replay()
        return static_y

    return run


def parity_reference(folder: Path, meta: dict, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The output to compare the device with: ONNX Runtime's on the source graph if it can run here, else the
    bridge's own on the CPU in fp32."""
    source = meta.get("source") or {}
    path = Path(source.get("path", ""))
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None and path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == source.get("sha256"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run([meta["outputs"][0]], {meta["inputs"][0]: x})[0], f"onnxruntime {ort.__version__} (CPU)"
    import torch

    return TorchGraph(folder)(torch.as_tensor(x)).numpy(), "the bridge on the CPU (fp32)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=Path, nargs="+", required=True)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256, 1024])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke test of this script")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")))
    args = ap.parse_args()

    import torch

    torch.backends.cudnn.benchmark = True
    cuda = args.device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    gpu = torch.cuda.get_device_name(0) if cuda else "cpu"
    short = gpu.replace("NVIDIA ", "").split()[0].lower()
    rows, data = [], {"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(), "graphs": {}}
    for folder in args.graphs:
        meta = json.loads((folder / "graph.json").read_text())
        gflop = meta["gflop_per_crop"]
        name = meta["metadata"].get("textsr.backbone", folder.name)
        x_np = np.random.default_rng(0).random((4, 3, 16, 64), dtype=np.float32)
        x_cpu = torch.as_tensor(x_np)
        ref_np, ref_name = parity_reference(folder, meta, x_np)
        ref = torch.as_tensor(ref_np)
        entry = data["graphs"][folder.name] = {"backbone": name, "gflop_per_crop": gflop, "parity_reference": ref_name, "parity": {}, "rows": []}
        graphs = {dtype: TorchGraph(folder, args.device, dtype) for dtype in {SETTINGS[s] for s in args.settings}}
        for dtype, g in graphs.items():
            out = g(x_cpu.to(args.device, getattr(torch, dtype))).float().cpu()
            entry["parity"][dtype] = float((out - ref).abs().max())
        for setting in args.settings:
            half = SETTINGS[setting] == "float16"
            g = graphs[SETTINGS[setting]]
            peak = peak_tflops(gpu, half)
            for b in args.batches:
                x = torch.rand(b, 3, 16, 64, device=args.device, dtype=torch.float16 if half else torch.float32)
                try:
                    fn = with_cuda_graph(g, x) if "graph" in setting else (lambda g=g, x=x: g(x))
                    per = timed(fn, args.seconds, sync)
                    cps = b / per
                    frac = cps * gflop * 1e9 / (peak * 1e12) if peak else None
                    row = {"setting": setting, "batch": b, "crops_per_s": cps, "ms_per_batch": 1000 * per, "roofline_fraction": frac}
                    rows.append([name, setting, b, f"{cps:,.0f}", f"{1000 * per:.2f}", f"{100 * frac:.1f}%" if frac is not None else "-"])
                except Exception as exc:  # noqa: BLE001 (a failed setting is a result, the sweep goes on)
                    row = {"setting": setting, "batch": b, "error": f"{type(exc).__name__}: {exc}"[:300]}
                    rows.append([name, setting, b, "failed", row["error"][:60], "-"])
                entry["rows"].append(row)
                print(rows[-1], flush=True)
                if cuda:
                    torch.cuda.empty_cache()
    md = table(["network", "setting", "batch", "crops/s", "ms/batch", "of dense FLOP peak"], rows)
    md += f"\n\n{gpu}, torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}. Peaks (TFLOP/s, dense): fp32 / fp16 tensor = {peak_tflops(gpu, False)} / {peak_tflops(gpu, True)}.\n"
    md += "Parity (max |diff| vs the reference named): " + "; ".join(
        f"{k} vs {v['parity_reference']}: " + ", ".join(f"{dt} {d:.1e}" for dt, d in v["parity"].items()) for k, v in data["graphs"].items()
    )
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_bridge-{short}"
    stem.with_suffix(".md").write_text(f"# gpu_bridge on {gpu}\n\n{md}\n")
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2))
    print("written:", stem.with_suffix(".md"))


if __name__ == "__main__":
    main()
