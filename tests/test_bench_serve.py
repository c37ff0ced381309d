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


def test_readme_performance_tables_are_the_recorded_runs(repo_root):
    """The README's suite and two-model tables are the committed results, and its ratios are computed from them."""
    readme = (repo_root / "README.md").read_text()
    for name in ("suite", "serve_throughput"):
        table = (repo_root / f"bench/results/{name}-cpu-2core.md").read_text().split("\n\n")[1].strip()
        assert table in readme, name
    data = json.loads((repo_root / "bench/results/serve_throughput-cpu-2core.json").read_text())
    default, fast = data["gestalt-tsrn-synth"], data["gestalt-tsrn-synth-fast"]
    http = " / ".join(f"{default['service'][c]['crops_per_s'] / fast['service'][c]['crops_per_s']:.2f}x" for c in ("1", "8", "64"))
    raw = default["raw_crops_per_s"]["64"] / fast["raw_crops_per_s"]["64"]
    assert (f"So the default serves {http} the fast model's crops per second over HTTP at concurrency 1 / 8 / 64"
            f" ({raw:.2f}x in raw ONNX Runtime at batch 64)") in " ".join(readme.split())


def test_suite_names_an_unknown_model_before_starting_anything():
    bad = subprocess.run([sys.executable, "bench/suite.py", "--model", "nope"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no model ['nope']" in bad.stderr and "there are [" in bad.stderr
