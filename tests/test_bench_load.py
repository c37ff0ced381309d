"""The overload and soak benches run end to end (short versions) and account for every request.

They drive a real `textsr serve` with Debian's wrk (installed by scripts/system-deps.sh); the full-length
figures in the README come from the same scripts at their default lengths.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/system-deps.sh installs it as root)")


def run_bench(tmp_path: Path, script: str, *args: str) -> dict:
    env = {**os.environ, "TEXTSR_BENCH_RESULTS": str(tmp_path)}
    subprocess.run([sys.executable, f"bench/{script}.py", *args], cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
    (result,) = tmp_path.glob("*.json")
    return json.loads(result.read_text())


def test_overload_refuses_excess_with_retry_after_and_recovers(tmp_path):
    r = run_bench(tmp_path, "overload", "--factor", "5", "--seconds", "4", "--probe-seconds", "2", "--port", "8791")
    assert r["offered_x_capacity"] > 2
    assert r["rejected_503"] > 0 and r["ok_200"] > 0
    assert r["503_without_retry_after"] == 0 and r["other_status"] == 0 and r["no_answer"] == 0
    assert r["sent"] == r["ok_200"] + r["rejected_503"]
    # the server counted at least what wrk saw answered (wrk stops counting answers in flight at its deadline)
    assert r["server_counted"]["200"] >= r["ok_200"] and r["server_counted"]["503"] >= r["rejected_503"]
    assert r["errors_after"] == 0 and r["recovered_crops_per_s"] > 0
    assert r["peak_rss_mb"] < 1024  # the bound the README states


def test_soak_short_run_has_no_errors(tmp_path):
    r = run_bench(tmp_path, "soak", "--minutes", "0.2", "--round-seconds", "4", "--port", "8792")
    assert r["sent"] > 0 and r["ok_200"] == r["sent"] and r["errors"] == 0
    assert len(r["rss_mb_samples"]) == 3 and r["rss_mb_max"] < 2048
