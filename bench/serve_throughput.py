"""Service throughput vs raw ONNX Runtime, same machine, every model in one table.

    .venv/bin/python bench/serve_throughput.py [--model-dir models] [--models NAME ...] [--seconds 15] [--concurrency 1 8 64]

Per model (all under --model-dir, or those named, one after the other): raw in-process ORT at batch 1
and 64 (a text-prior model's engine reads the prior first, as the service does); then `textsr serve`
(a child process, that model the default, recognition off) over HTTP with C concurrent clients each
posting one 16x64 PNG crop per request and getting the 32x128 PNG back. Reports crops/s, p50/p99
latency, service / raw(batch 64), and each row's crops/s over the first model's same row.
Writes bench/results/serve_throughput-<device>.md|json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import ServiceProcess, median, model_folders, open_model, png_crop, table, time_call, write_result  # noqa: E402


def raw_ort(folder: Path, batch: int, seconds: float) -> float:
    eng = open_model(folder)
    x = np.random.default_rng(0).random((batch, 3, 16, 64), dtype=np.float32)
    per = median(time_call(lambda: eng(x), max(2, int(seconds / 2)), warmup=1))
    return batch / per


async def drive(url: str, crop: bytes, concurrency: int, seconds: float) -> tuple[int, list[float], int]:
    import httpx

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await client.post("/v1/upscale", files={"file": ("c.png", crop)}, headers={"Accept": "image/png"})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies, errors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--models", nargs="+", help="model names under --model-dir, in this order (default: all)")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()

    folders = model_folders(args.model_dir, ap, args.models or ())
    names = args.models or list(folders)
    data, measured = {}, {}
    for name in names:
        data[name], measured[name] = measure(name, folders[name][0], args)
    first = measured[names[0]]
    rows = [[name, path, conc, f"{cps:.1f}", p50, p99, ratio, f"{cps / first[path][0]:.2f}"]
            for name in names for path, (cps, conc, p50, p99, ratio) in measured[name].items()]
    md = table(["model", "path", "concurrency", "crops/s", "p50 ms", "p99 ms", "ratio to raw ORT batch 64",
                f"crops/s vs {names[0]}"], rows)
    print(md)
    print("written:", write_result("serve_throughput", md, data))


def measure(name: str, folder: Path, args) -> tuple[dict, dict[str, tuple]]:
    """One model's raw and HTTP figures: (JSON record, {path: (crops/s, concurrency, p50, p99, ratio)})."""
    data = {"folder": str(folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder)}
    raw = {b: raw_ort(folder, b, args.seconds) for b in (1, 64)}
    out = {f"raw ORT, batch {b}": (cps, "-", "-", "-", f"{cps / raw[64]:.2f}") for b, cps in raw.items()}
    data["raw_crops_per_s"] = raw
    crop = png_crop()
    with ServiceProcess(args.model_dir, args.port, name, TEXTSR_MAX_BATCH_SIZE="64", TEXTSR_MAX_QUEUE_DELAY_MS="2") as service:
        data["service"] = {}
        for c in args.concurrency:
            asyncio.run(drive(service.url, crop, c, 2))  # warm-up
            n, lat, errors = asyncio.run(drive(service.url, crop, c, args.seconds))
            cps = n / args.seconds
            p50, p99 = (float(np.percentile(lat, q)) * 1000 for q in (50, 99))
            data["service"][c] = {"crops_per_s": cps, "p50_ms": p50, "p99_ms": p99, "errors": errors}
            out[f"service over HTTP, concurrency {c}"] = (cps, c, f"{p50:.0f}", f"{p99:.0f}", f"{cps / raw[64]:.2f}")
            print(name, c, f"{cps:.1f} crops/s", flush=True)
    return data, out


if __name__ == "__main__":
    main()
