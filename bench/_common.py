"""Helpers shared by the benchmarks: timing, tables, result files."""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

logging.getLogger("httpx").setLevel(logging.WARNING)  # paddle's import turns INFO on; a log line per request skews the client

RESULTS = Path(os.environ.get("TEXTSR_BENCH_RESULTS", Path(__file__).parent / "results"))  # tests point it elsewhere


def device_name() -> str:
    """A short name of this machine for result files, e.g. ``cpu-2core``."""
    return f"cpu-{os.cpu_count()}core"


def open_model(folder: Path) -> Callable:
    """A model folder's engine as the service opens it on CPU (sha256 checked against the manifest; a text-prior model
    computes its prior first), so a bench measures any model the service can load."""
    from service.repository import load_model

    return load_model(folder, "cpu", "fp32", 0).engine


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


ROOT = Path(__file__).resolve().parent.parent


def model_folders(model_dir: Path, ap=None, names: list[str] | tuple[str, ...] = ()) -> dict:
    """Each model under ``model_dir`` as the service finds it, by name: ``(folder, manifest)``. With ``ap``, a name in
    ``names`` that is not there stops the command with ``ap.error`` naming the models that are."""
    from core.manifest import read_manifest
    from service.repository import discover

    found = {m.name: (folder, m) for folder in discover(model_dir) for m in [read_manifest(folder)]}
    missing = sorted(set(names) - set(found))
    if missing and ap is not None:
        ap.error(f"no model {missing} under {model_dir}; there are {sorted(found)}")
    return found


class ServiceProcess:
    """`textsr serve` in a child process for a benchmark; ``with`` starts it and waits for /readyz."""

    def __init__(self, model_dir: Path, port: int, model: str | None = None, **env: str) -> None:
        """``model``: the one served as the default (``TEXTSR_DEFAULT_MODEL``); None: the service's own choice."""
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ, "TEXTSR_MODEL_DIR": str(model_dir), "TEXTSR_PORT": str(port), "TEXTSR_PROVIDERS": "cpu",
            "TEXTSR_RECOGNITION": "false", "TEXTSR_LOG_LEVEL": "warning", **({"TEXTSR_DEFAULT_MODEL": model} if model else {}), **env,
        }
        self.proc = None

    def __enter__(self) -> ServiceProcess:
        import subprocess
        import sys

        import httpx

        self.proc = subprocess.Popen([sys.executable, "-m", "textsr", "serve"], env=self.env, cwd=ROOT)
        for _ in range(600):
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with {self.proc.returncode} before it was ready (its error is above)")
            try:
                if httpx.get(self.url + "/readyz").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("service did not become ready")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(60)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the server process in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        get = lambda key: float(next(l.split()[1] for l in status.splitlines() if l.startswith(key))) / 1024  # noqa: E731, E741
        return get("VmRSS:"), get("VmHWM:")


_WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=textsrbench"
wrk.headers["Accept"] = "image/png"
local f = assert(io.open([[%(body)s]], "rb")); wrk.body = f:read("*a"); f:close()
local threads = {}
function setup(thread) table.insert(threads, thread) end
statuses = {}
no_retry_after = 0
written = 0
function request() written = written + 1; return wrk.format() end
function delay() return %(delay_ms)d end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 and headers["retry-after"] == nil and headers["Retry-After"] == nil then
    no_retry_after = no_retry_after + 1
  end
end
function done(summary, latency, requests)
  local total, missing, sent = {}, 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[tostring(k)] = (total[tostring(k)] or 0) + v end
    missing = missing + t:get("no_retry_after")
    sent = sent + t:get("written")
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%%s": %%d', k, v)) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"statuses": {%%s}, "requests": %%d, "duration_s": %%f, "socket_errors": ' ..
    '{"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, "no_retry_after": %%d, "written": %%d, "p50_ms": %%f, "p99_ms": %%f}\\n',
    table.concat(parts, ", "), summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.timeout,
    missing, sent, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk_load(url: str, crop: bytes, connections: int, seconds: float, delay_ms: int, timeout_s: int = 30) -> dict:
    """Drive ``POST /v1/upscale`` with Debian's ``wrk`` (a C load generator, so the client is not the
    bottleneck): ``connections`` connections, each sending one crop, reading the answer, then waiting
    ``delay_ms``. Returns the status counts, socket errors (connect/read/write/timeout: requests that
    got no HTTP answer; their sum is ``no_answer``), ``ok_200``, ``errors`` (every request that did not get
    a 200), 503s without ``Retry-After``, ``written`` (requests wrk wrote, counted as it writes them: the
    answered ones, those that failed, and those still in flight at its deadline, which wrk never counts),
    and latency percentiles over all answers."""
    import re
    import shutil
    import subprocess
    import tempfile

    if shutil.which("wrk") is None:
        raise SystemExit("this benchmark needs wrk: apt-get install wrk (Debian)")
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body"
        body.write_bytes(
            b"--textsrbench\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + crop + b"\r\n--textsrbench--\r\n"
        )
        script = Path(tmp) / "load.lua"
        script.write_text(_WRK_LUA % {"body": str(body), "delay_ms": delay_ms})
        out = subprocess.run(
            ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", f"{timeout_s}s", "-s", str(script), url + "/v1/upscale"],
            capture_output=True, text=True, check=True,
        ).stdout
    match = re.search(r"^WRKJSON (.*)$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    run = json.loads(match.group(1))
    run["ok_200"] = run["statuses"].get("200", 0)
    run["no_answer"] = sum(run["socket_errors"].values())
    run["errors"] = sum(run["statuses"].values()) - run["ok_200"] + run["no_answer"]  # anything but a 200
    return run


def capacity(url: str, crop: bytes, seconds: float) -> tuple[float, dict]:
    """Crops/s that 16 wrk connections sending back to back get answered with 200, and the wrk run."""
    run = wrk_load(url, crop, connections=16, seconds=seconds, delay_ms=0)
    return run["ok_200"] / run["duration_s"], run


def png_crop(seed: int = 0) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".png", np.random.default_rng(seed).integers(0, 256, (16, 64, 3), dtype=np.uint8))
    return buf.tobytes()
