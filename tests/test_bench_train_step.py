"""bench/train_step.py runs and writes its table (tiny settings; the committed result is the full run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("paddle", reason="the training-step bench needs paddle")


def test_train_step_bench_writes_its_table(tmp_path, repo_root):
    from training.data.synth import generate

    generate(tmp_path / "data", train=8, test=0, seed=1, progress=False)
    env = {**os.environ, "TEXTSR_BENCH_RESULTS": str(tmp_path / "results")}
    subprocess.run(
        [sys.executable, "bench/train_step.py", "--data", str(tmp_path / "data" / "train"), "--repeat", "1", "--threads", "1",
         "--batch", "2", "--rows", "tsrn_mse_plain_tail", "tsrn_mse", "log_softmax_paddle", "log_softmax_logsumexp"],
        cwd=repo_root, env=env, check=True, capture_output=True, timeout=300,
    )
    (md,) = (tmp_path / "results").glob("train_step-*.md")
    (js,) = (tmp_path / "results").glob("train_step-*.json")
    results = json.loads(js.read_text())["results"]
    assert set(results) == {"tsrn_mse_plain_tail@1", "tsrn_mse@1", "log_softmax_paddle@1", "log_softmax_logsumexp@1"}
    assert all(r["seconds"] > 0 for r in results.values()) and "| log_softmax_logsumexp" in md.read_text()
    assert "TSRN step (pixel MSE), 1 thread(s):" in md.read_text()  # the before/after line of a pair it ran


def test_readme_quotes_the_recorded_training_step_figures(repo_root):
    results = json.loads((repo_root / "bench/results/train_step-cpu-2core.json").read_text())["results"]
    r = {k.removesuffix("@1"): v["seconds"] for k, v in results.items() if k.endswith("@1")}
    readme = " ".join((repo_root / "README.md").read_text().split())
    assert (f"costs {r['recipe_after']:.2f} s per batch of 8 on one core, {r['recipe_before']:.2f} s before the tail convolution"
            f" was folded (TSRN alone: {r['tsrn_mse_plain_tail']:.2f} -> {r['tsrn_mse']:.2f} s;") in readme
    assert f"(its forward + backward: {r['recognizer_forward_backward_unfused']:.2f} -> {r['recognizer_forward_backward']:.2f} s)" in readme
    assert f"costs {r['recognition_after']:.2f} s; it cost {r['recognition_before']:.2f} s as first written" in readme
