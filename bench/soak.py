"""Soak: half the measured capacity for 10 minutes; resident memory drift <= 5% and zero errors.

    .venv/bin/python bench/soak.py [--model-dir models] [--minutes 10]

Memory is read from /proc every 30 s; drift = last sample / the sample after the first minute.
Writes bench/results/soak-<device>.md|json.
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
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--port", type=int, default=8768)
    args = ap.parse_args()
    crop = png_crop()
    with ServiceProcess(args.model_dir, args.port) as s:
        n, _, _ = asyncio.run(drive(s.url, crop, 16, 8))
        rate = 0.5 * n / 8
        totals = {"ok": 0, "rejected_503": 0, "failed": 0, "sent": 0}
        samples = []
        for _ in range(max(1, int(args.minutes * 2))):
            result = asyncio.run(open_loop(s.url, crop, rate, 30))
            for k in totals:
                totals[k] += result[k]
            samples.append(s.rss_mb()[0])
            print(f"sent {totals['sent']}, ok {totals['ok']}, rss {samples[-1]:.0f} MB", flush=True)
    base = samples[min(2, len(samples) - 1)]
    data = {"rate_req_per_s": rate, "minutes": args.minutes, **totals, "rss_mb_samples": samples, "rss_drift": samples[-1] / base - 1}
    md = table(["figure", "value"], [[k, f"{v:.3f}" if isinstance(v, float) else v] for k, v in data.items() if k != "rss_mb_samples"])
    print(md)
    print("written:", write_result("soak", md, data))


if __name__ == "__main__":
    main()
