"""bench/serve_throughput.py measures every model side by side in one run (short version here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_serve_throughput_puts_each_model_beside_the_first(tmp_path, models_root):
    from core.manifest import read_manifest

    names = [read_manifest(f.parent).name for f in sorted(models_root.glob("*/manifest.json"))]
    env = {**os.environ, "TEXTSR_BENCH_RESULTS": str(tmp_path)}
    cmd = [sys.executable, "bench/serve_throughput.py", "--model-dir", str(models_root), "--models", *names[::-1],
           "--seconds", "0.5", "--concurrency", "2", "--port", "8793"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=300, capture_output=True)
    data = json.loads(next(tmp_path.glob("serve_throughput-*.json")).read_text())
    assert [k for k in data if k != "meta"] == names[::-1]
    for name in names:
        assert data[name]["service"]["2"]["errors"] == 0 and data[name]["service"]["2"]["crops_per_s"] > 0
        assert set(data[name]["raw_crops_per_s"]) == {"1", "64"}
    table = next(tmp_path.glob("serve_throughput-*.md")).read_text()
    first = [line for line in table.splitlines() if line.startswith(f"| {names[-1]} ")]
    assert len(first) == 3 and all(line.rstrip(" |").endswith("1.00") for line in first)
    bad = subprocess.run([*cmd[:4], "--models", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no model ['nope']" in bad.stderr
