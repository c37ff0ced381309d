"""Helpers shared by the benchmarks: timing, tables, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def device_name() -> str:
    """A short name of this machine for result files, e.g. ``cpu-2core``."""
    return f"cpu-{os.cpu_count()}core"


def time_call(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells)])


def write_result(name: str, markdown: str, data: dict) -> Path:
    """Write ``bench/results/<name>-<device>.md`` and ``.json``; returns the Markdown path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{name}-{device_name()}"
    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    stem.with_suffix(".md").write_text(f"# {name} on {device_name()}\n\n{markdown}\n\n{json.dumps(meta)}\n")
    stem.with_suffix(".json").write_text(json.dumps({**data, "meta": meta}, indent=2))
    return stem.with_suffix(".md")
