"""Overload: ~10x the measured capacity for 30 s; excess is refused with 503 + Retry-After,
accepted requests succeed, memory stays bounded, throughput recovers afterwards.

    .venv/bin/python bench/overload.py [--model-dir models] [--model NAME] [--factor 10] [--seconds 30]

The load comes from Debian's ``wrk`` (C, so the client is not the bottleneck on a small machine):
capacity is measured first (16 connections back to back); then ``factor x capacity`` connections each
send one crop, read the answer and wait one second, which offers about ``factor x capacity`` requests/s
whatever the server does. Afterwards capacity is measured again (recovery). The server's own
``textsr_requests`` counter is read back right after the load (``server_counted``, to set against wrk's
answered statuses) and after the drain (``server_counted_after_drain``, to set against ``written``, every
request wrk wrote, including those in flight at its deadline that wrk never counts), so every request wrk
sent is accounted for on both sides.

The queue capacity and the in-flight request limit are set to about two seconds of work so that an
accepted request is served well within the request timeout: that is the sizing rule the README recommends.
Writes bench/results/overload-<device>.md|json.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, ServiceProcess, capacity, model_folders, png_crop, table, write_result, wrk_load  # noqa: E402


def scrape(url: str, pattern: str) -> list:
    """``re.findall`` of ``pattern`` over the lines of the server's /metrics."""
    import httpx

    return re.findall(pattern, httpx.get(url + "/metrics").text, re.M)


def server_counts(url: str) -> dict[str, float]:
    """``textsr_requests_total`` for /v1/upscale by status, read from the server's /metrics."""
    return {status: float(v) for status, v in scrape(url, r'^textsr_requests_total\{endpoint="/v1/upscale",status="(\d+)"\} (\S+)$')}


def wait_drained(url: str, timeout: float = 60) -> float:
    """Seconds until the server has no request in flight (its ``textsr_requests_in_flight`` gauge is 0)."""
    import time

    start = time.perf_counter()
    while time.perf_counter() < start + timeout:
        gauge = scrape(url, r"^textsr_requests_in_flight (\S+)$")
        if not gauge:
            raise RuntimeError("the server exports no textsr_requests_in_flight gauge")
        if float(gauge[0]) == 0:
            return time.perf_counter() - start
        time.sleep(0.1)
    raise RuntimeError(f"requests still in flight {timeout:.0f} s after the load stopped")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--factor", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--probe-seconds", type=float, default=10)
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--name", default="overload", help="result file stem")
    ap.add_argument("--model", help="the model the requests go to (default: the service's default model)")
    args = ap.parse_args()
    model_folders(args.model_dir, ap, [args.model] if args.model else ())
    crop = png_crop()
    with ServiceProcess(args.model_dir, args.port, args.model) as probe:
        cap, _ = capacity(probe.url, crop, args.probe_seconds)
    queue = max(16, int(2 * cap))
    env = {"TEXTSR_QUEUE_CAPACITY": str(queue), "TEXTSR_MAX_INFLIGHT_REQUESTS": str(queue), "TEXTSR_MAX_BATCH_SIZE": "32"}
    with ServiceProcess(args.model_dir, args.port, args.model, **env) as s:
        rss_before, _ = s.rss_mb()
        connections = max(1, round(args.factor * cap))
        load = wrk_load(s.url, crop, connections=connections, seconds=args.seconds, delay_ms=1000)
        _, peak = s.rss_mb()
        after = server_counts(s.url)
        # wrk closes its connections at the deadline; the server still finishes what it accepted (up to the
        # in-flight limit) before it takes new work: wait for that drain, then measure capacity again.
        drain_s = wait_drained(s.url)
        drained = server_counts(s.url)  # now also the requests that were in flight at wrk's deadline
        recovered, rec_run = capacity(s.url, crop, args.probe_seconds)
    st, no_answer = load["statuses"], load["no_answer"]
    data = {
        "capacity_crops_per_s": cap, "queue_capacity": queue, "connections": connections, "seconds": args.seconds,
        "offered_req_per_s": load["requests"] / load["duration_s"], "offered_x_capacity": load["requests"] / load["duration_s"] / cap,
        "sent": load["requests"] + no_answer, "ok_200": load["ok_200"], "rejected_503": st.get("503", 0),
        "other_status": load["errors"] - no_answer - st.get("503", 0), "no_answer": no_answer,
        "socket_errors": load["socket_errors"], "503_without_retry_after": load["no_retry_after"],
        "accepted_goodput_crops_per_s": load["ok_200"] / load["duration_s"],
        "server_counted": after, "written": load["written"], "server_counted_after_drain": drained,
        "rss_before_mb": rss_before, "peak_rss_mb": peak,
        "p50_ms_all_answers": load["p50_ms"], "p99_ms_all_answers": load["p99_ms"],
        "drain_after_load_s": drain_s, "recovered_crops_per_s": recovered, "errors_after": rec_run["errors"],
    }
    rows = [[k, f"{v:.1f}" if isinstance(v, float) else v] for k, v in data.items()]
    md = table(["figure", "value"], rows)
    print(md)
    print("written:", write_result(args.name, md, data))


if __name__ == "__main__":
    main()
