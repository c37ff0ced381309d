"""Overload: ~10x the measured capacity for 30 s; excess is refused with 503 + Retry-After,
accepted requests succeed, memory stays bounded, throughput recovers afterwards.

    .venv/bin/python bench/overload.py [--model-dir models] [--factor 10] [--seconds 30]

The queue capacity and the in-flight request limit are set to about two seconds of work so that an accepted request is served
well within the request timeout: that is the sizing rule the README recommends.
Writes bench/results/overload-<device>.md|json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, ServiceProcess, open_loop, png_crop, table, write_result  # noqa: E402
from bench.serve_throughput import drive  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--factor", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--port", type=int, default=8767)
    args = ap.parse_args()
    crop = png_crop()
    with ServiceProcess(args.model_dir, args.port) as probe:
        n, _, _ = asyncio.run(drive(probe.url, crop, 16, 8))
    capacity = n / 8
    queue = max(16, int(2 * capacity))
    with ServiceProcess(args.model_dir, args.port, TEXTSR_QUEUE_CAPACITY=str(queue), TEXTSR_MAX_INFLIGHT_REQUESTS=str(queue), TEXTSR_MAX_BATCH_SIZE="32") as s:
        rss_before, _ = s.rss_mb()
        load = asyncio.run(open_loop(s.url, crop, args.factor * capacity, args.seconds))
        _, peak = s.rss_mb()
        n, _, errors = asyncio.run(drive(s.url, crop, 16, 8))
        recovered = n / 8
    data = {"capacity_crops_per_s": capacity, "queue_capacity": queue, "offered_rate": args.factor * capacity, "seconds": args.seconds,
            **load, "rss_before_mb": rss_before, "peak_rss_mb": peak, "recovered_crops_per_s": recovered, "errors_after": errors}
    rows = [[k, f"{v:.1f}" if isinstance(v, float) else v] for k, v in data.items()]
    md = table(["figure", "value"], rows)
    print(md)
    print("written:", write_result("overload", md, data))


if __name__ == "__main__":
    main()
