"""Soak: half the measured capacity for 10 minutes; resident memory drift <= 5% and zero errors.

    .venv/bin/python bench/soak.py [--model-dir models] [--model NAME] [--minutes 10]

The load comes from Debian's ``wrk``: ``round(rate)`` connections, each sending one crop, reading the
answer and waiting one second (about ``rate`` requests/s), in 30 s rounds. Capacity is measured first
with 16 connections back to back. Memory is read from /proc after every round; drift = last sample /
the sample after the warm-up (``--warmup-seconds``, default the first minute: the allocator's warm-up is
not a leak) - 1.
Writes bench/results/soak-<device>.md|json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, ServiceProcess, capacity, model_folders, png_crop, table, write_result, wrk_load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--model", help="the model the requests go to (default: the service's default model)")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--port", type=int, default=8768)
    ap.add_argument("--round-seconds", type=float, default=30, help="length of one load round; RSS is read after each")
    ap.add_argument("--warmup-seconds", type=float, default=60, help="drift is measured from the RSS sample after this much load")
    args = ap.parse_args()
    model_folders(args.model_dir, ap, [args.model] if args.model else ())
    crop = png_crop()
    with ServiceProcess(args.model_dir, args.port, args.model) as s:
        cap, _ = capacity(s.url, crop, min(10, args.round_seconds))
        rate = 0.5 * cap
        totals = {"sent": 0, "ok_200": 0, "errors": 0}
        samples, p99 = [], []
        for _ in range(max(1, round(args.minutes * 60 / args.round_seconds))):
            run = wrk_load(s.url, crop, connections=max(1, round(rate)), seconds=args.round_seconds, delay_ms=1000)
            totals["sent"] += run["requests"] + run["no_answer"]
            totals["ok_200"] += run["ok_200"]
            totals["errors"] += run["errors"]
            samples.append(s.rss_mb()[0])
            p99.append(run["p99_ms"])
            print(f"sent {totals['sent']}, ok {totals['ok_200']}, errors {totals['errors']}, rss {samples[-1]:.0f} MB", flush=True)
    base = samples[min(max(0, round(args.warmup_seconds / args.round_seconds) - 1), len(samples) - 1)]  # after the warm-up
    data = {
        "capacity_crops_per_s": cap, "rate_req_per_s": rate, "minutes": args.minutes, **totals,
        "warmup_seconds": args.warmup_seconds, "rss_mb_first": samples[0], "rss_mb_after_warmup": base, "rss_mb_last": samples[-1], "rss_mb_max": max(samples),
        "rss_drift": samples[-1] / base - 1, "worst_round_p99_ms": max(p99), "rss_mb_samples": samples,
    }
    md = table(["figure", "value"], [[k, f"{v:.3f}" if isinstance(v, float) else v] for k, v in data.items() if k != "rss_mb_samples"])
    print(md)
    print("written:", write_result("soak", md, data))


if __name__ == "__main__":
    main()
