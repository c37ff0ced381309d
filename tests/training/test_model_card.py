"""The model card is built from the run's own files: steps, wall time across a resume, the shipped step, metrics."""

from __future__ import annotations

import json
import shutil


def test_card_reads_steps_time_best_step_and_metrics(tmp_path, model_dir_any, repo_root):
    from training.model_card import write_card

    model = tmp_path / "model"
    shutil.copytree(model_dir_any, model)
    (model / "ablation.md").unlink(missing_ok=True)  # the ablation section comes last; tested in test_ablation.py
    metrics = json.loads((repo_root / "models/gestalt-tsrn-synth/metrics.json").read_text())
    run = tmp_path / "run"
    run.mkdir()
    log = [{"step": 10, "loss": 0.1, "time_s": 600.0}, {"step": 20, "loss": 0.09, "time_s": 1200.0},
           {"step": 30, "loss": 0.08, "time_s": 300.0}]  # resumed after step 20: the clock restarted
    (run / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in log) + "\n")
    (run / "best_accuracy.states").write_text(json.dumps({"global_step": 20}))
    card = write_card(model, metrics, run, repo_root / "training/configs/default_tsrn.yml", "synthetic pairs.", "## Notes\nextra").read_text()
    assert "30 steps (shipped: the best evaluated checkpoint, step 20)" in card
    assert "25 min of training" in card  # 1200 s + 300 s
    avg = metrics["average"]
    assert f"{avg['bicubic']['psnr_paddleocr']:.2f} / {avg['sr']['psnr_paddleocr']:.2f}" in card
    assert card.rstrip().endswith("extra")
