"""bench/loss_alignment.py runs and writes its table (tiny settings; the committed result is the full run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("paddle", reason="the loss-alignment bench needs paddle")


def test_loss_alignment_bench_writes_its_table(tmp_path, repo_root):
    from training.data.synth import generate

    generate(tmp_path / "data", train=0, test=0, val=4, seed=1, progress=False)
    env = {**os.environ, "TEXTSR_BENCH_RESULTS": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "bench/loss_alignment.py", "--data", str(tmp_path / "data" / "val"), "--crops", "4", "--views", "2",
         "--terms", "pixel MSE", "CTC"],
        cwd=repo_root, env=env, check=True, capture_output=True, timeout=300,
    )
    (md,) = (tmp_path / "results").glob("loss_alignment-*.md")
    results = json.loads(next((tmp_path / "results").glob("loss_alignment-*.json")).read_text())["results"]
    assert set(results) == {f"{t} @ {b}" for t in ("pixel MSE", "CTC", "CTC, eot") for b in ("SR", "bicubic")}
    for base in ("SR", "bicubic"):  # descending MSE(x, HR) is moving straight towards HR: the measure is right
        assert results[f"pixel MSE @ {base}"]["cos_mean"] == pytest.approx(1.0, abs=1e-4)
        assert results[f"pixel MSE @ {base}"]["positive"] == 1.0
        assert abs(results[f"CTC @ {base}"]["cos_mean"]) < 0.5  # a recognizer's gradient is not a pixel loss's
    assert all(0 < r["low_freq_energy"] < 1 for r in results.values()) and "| CTC, eot" in md.read_text()
    # the SR is the fast model's (the base recipe), built as its manifest says (its residual strength included)
    from core.manifest import read_manifest

    overrides = read_manifest(repo_root / "models/gestalt-tsrn-synth-fast").source["overrides"]
    assert json.loads(next((tmp_path / "results").glob("loss_alignment-*.json")).read_text())["overrides"] == overrides.split()
    assert f"with `{overrides}`" in md.read_text()


def test_readme_alignment_figures_are_the_recorded_runs(repo_root):
    recorded = json.loads((repo_root / "bench/results/loss_alignment-cpu-2core.json").read_text())
    r = {k: round(v["cos_mean"], 3) for k, v in recorded["results"].items() if k.endswith("@ SR")}
    readme = " ".join((repo_root / "README.md").read_text().split())
    want = (f"is 1 for pixel MSE, {r['feature teacher @ SR']:+.3f} for the feature teacher ({r['feature teacher, eot @ SR']:+.3f} with "
            f"`eot`), {r['KL teacher @ SR']:+.3f} for KL ({r['KL teacher, eot @ SR']:+.3f}) and {r['CTC @ SR']:+.3f} for CTC "
            f"({r['CTC, eot @ SR']:+.3f})")
    assert recorded["crops"] == 48 and r["pixel MSE @ SR"] == 1.0 and want in readme
