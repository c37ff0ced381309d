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
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["source"] = {**manifest["source"], "checkpoint": "best_accuracy.pdparams"}
    manifest["source"].pop("overrides", None)
    (model / "manifest.json").write_text(json.dumps(manifest))
    config = repo_root / "training/configs/default_tsrn.yml"
    card = write_card(model, metrics, [run], config, "synthetic pairs.", "## Notes\nextra").read_text()
    assert "30 steps (shipped: the best evaluated checkpoint, step 20), then `textsr convert`." in card
    assert "25 min of training" in card  # 1200 s + 300 s
    avg = metrics["average"]
    assert f"{avg['bicubic']['psnr_paddleocr']:.2f} / {avg['sr']['psnr_paddleocr']:.2f}" in card
    assert card.rstrip().endswith("extra")
    # the last checkpoint of a run continued in a second folder, converted with an override
    more = tmp_path / "more"
    more.mkdir()
    (more / "train_log.jsonl").write_text(json.dumps({"step": 40, "loss": 0.07, "time_s": 120.0}) + "\n")
    manifest["source"].update(checkpoint="latest.pdparams", overrides="Architecture.Transform.residual_scale=0.4")
    (model / "manifest.json").write_text(json.dumps(manifest))
    card = write_card(model, metrics, [run, more], config, "synthetic pairs.").read_text()
    assert "40 steps (shipped: the last checkpoint, step 40), then `textsr convert -o Architecture.Transform.residual_scale=0.4`" in card
    assert "27 min of training" in card  # + 120 s
    # a run whose logs go on past the converted step: the card reads the logs up to that step
    card = write_card(model, metrics, [run, more], config, "synthetic pairs.", last_step=20).read_text()
    assert "20 steps (shipped: the last checkpoint, step 20)" in card and "20 min of training" in card


def test_targets_table_says_met_or_missed():
    from training.model_card import targets_table

    def split(bic, sr):
        return {"accuracy": {"bicubic": bic, "sr": sr, "hr": 0.98}}

    metrics = {
        "splits": {"easy": split(0.6, 0.75), "unseen": split(0.5, 0.49)},
        "average": {
            "sr": {"psnr_paddleocr": 20.0, "ssim": 0.70}, "bicubic": {"psnr_paddleocr": 18.5, "ssim": 0.60},
            "accuracy": {"bicubic": 0.55, "sr": 0.66, "hr": 0.98}, "heldout_accuracy": {"bicubic": 0.5, "sr": 0.52, "hr": 0.9},
            "sr_vs_bicubic": {"service": {"crops": 1200, "only_first": 200, "only_second": 68, "p": 1e-15}},
        },
    }
    rows = targets_table(metrics).splitlines()[2:]
    assert [r.rsplit("|", 2)[1].strip() for r in rows] == ["yes", "**no**", "yes", "yes", "**no**"]
    assert "+11.00 (p = 1e-15)" in rows[0] and "+1.50" in rows[2] and "+0.1000" in rows[3] and "-1.00" in rows[4]
    metrics["average"]["sr_vs_bicubic"]["service"]["p"] = 0.02  # the gain alone is not enough: it must be significant
    assert targets_table(metrics).splitlines()[2].endswith("| **no** |")
    del metrics["average"]["heldout_accuracy"]
    assert targets_table(metrics) == ""


def test_card_names_the_text_prior_and_its_generator(tmp_path, model_dir_any, repo_root):
    """A text-prior model's card says that the service reads the crop with the prior's recognizer first, which file
    that is, and which inputs the graph takes; a model without a prior says it has none."""
    from training.model_card import write_card

    model = tmp_path / "model"
    shutil.copytree(model_dir_any, model)
    (model / "ablation.md").unlink(missing_ok=True)
    metrics = json.loads((repo_root / "models/gestalt-tsrn-synth/metrics.json").read_text())
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text(json.dumps({"step": 5, "loss": 0.1, "time_s": 60.0}) + "\n")
    config = repo_root / "training/configs/prior_glyph_tsrn.yml"
    manifest = json.loads((model / "manifest.json").read_text())
    manifest.pop("text_prior", None)
    (model / "manifest.json").write_text(json.dumps(manifest))
    card = write_card(model, metrics, [run], config, "synthetic.", made_by="the lineage below").read_text()
    assert "exported SR path only" in card and "(the lineage below): loss" in card
    tensor = {"dtype": "float32"}
    manifest["text_prior"] = {
        "input": {**tensor, "name": "prior", "shape": [-1, 64, 24]}, "recognizer": "prior_generator.onnx",
        "recognizer_sha256": "0" * 64, "characters": "ab", "bundled": True,
        "glyphs": {**tensor, "name": "glyphs", "shape": [-1, 1, 32, 128]},
    }
    (model / "manifest.json").write_text(json.dumps(manifest))
    card = write_card(model, metrics, [run], config, "synthetic.").read_text()
    assert "exported SR path only" not in card
    assert ("reads the LR crop with `prior_generator.onnx` (in this folder, a copy of the service recognizer fine-tuned"
            " with the SR network) and feeds its class probabilities as `prior` [-1, 64, 24]") in card
    assert "`glyphs` [-1, 1, 32, 128]; every request runs both graphs." in card


def test_card_command_names_a_missing_input(tmp_path, repo_root):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "training.model_card", "--model-dir", str(repo_root / "models/gestalt-tsrn-synth"),
           "--train-dir", str(tmp_path), "--config", str(repo_root / "training/configs/default_tsrn.yml"),
           "--data-note", "x", "--extra", str(tmp_path / "notes.md")]
    bad = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and f"no such file: {tmp_path / 'notes.md'}" in bad.stderr and "Traceback" not in bad.stderr
