"""The ablation table is computed from each arm's own metrics.json, and the model card carries it."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import pytest

ARM_LABELS = ["pixel + feature teacher (default)", "pixel only", "pixel + KL/CTC"]
ARM_TERMS = {"feature": {"loss_pixel", "loss_teacher"}, "pixel": {"loss_pixel"}, "recognition": {"loss_pixel", "loss_teacher", "loss_ctc"}}
"""The Makefile's arms, in its order: the loss terms each one logs."""


def _arm(tmp_path, repo_root, name, sr_accuracy, correct=None):
    metrics = json.loads((repo_root / "models/gestalt-tsrn-synth/metrics.json").read_text())
    metrics = copy.deepcopy(metrics)
    for split in metrics["splits"].values():
        split["accuracy"]["sr"] = sr_accuracy
        if correct is not None:
            split["correct"] = {"sr": correct}
    metrics["average"]["accuracy"]["sr"] = sr_accuracy
    folder = tmp_path / name
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder, metrics


def test_mcnemar_exact():
    from training.metrics import mcnemar_p

    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 / 64)  # all 6 discordant pairs one way: 2 * 0.5**6
    assert mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)  # (C(10,0) + C(10,1)) / 2**10, two-sided
    assert mcnemar_p(9, 1) == mcnemar_p(1, 9)


def test_paired_line_counts_discordant_crops(tmp_path, repo_root):
    from training.ablation import build

    a, _ = _arm(tmp_path, repo_root, "a", 0.5, correct="1100")
    b, _ = _arm(tmp_path, repo_root, "b", 0.5, correct="0111")
    text, _ = build([f"A={a}", f"B={b}"])
    # per split "1100" vs "0111": B alone reads 2 crops, A alone 1; four splits
    assert "Paired on the same 16 crops: B reads 8 SR crops that A misses, and misses 4 that A reads" in text
    c, _ = _arm(tmp_path, repo_root, "c", 0.5)  # no per-crop record: no paired line
    assert "Paired" not in build([f"A={a}", f"C={c}"])[0]


def test_table_and_summary_from_the_arms(tmp_path, repo_root):
    from training.ablation import build, render

    a, ma = _arm(tmp_path, repo_root, "a", 0.50)
    b, _ = _arm(tmp_path, repo_root, "b", 0.70)
    rec = tmp_path / "recognizer_metrics.json"
    rec.write_text(json.dumps({"steps": 1000, "width": 0.25, "token_accuracy": 0.8, "token_accuracy_without_image": 0.5, "sequence_accuracy": 0.3, "eval_crops": 900}))
    text, summary = build([f"MSE only={a}", f"StrokeFocusLoss={b}"], rec, "Both arms start from step 2000.")
    bic = ma["average"]["accuracy"]["bicubic"]
    assert summary["arms"]["StrokeFocusLoss"]["recognition_gain_points"] == pytest.approx(100 * (0.70 - bic))
    assert summary["arms"]["MSE only"]["recognition_gain_points_per_split"]["hard"] == pytest.approx(
        100 * (0.50 - ma["splits"]["hard"]["accuracy"]["bicubic"]))
    assert f"({100 * (0.70 - bic):+.1f})" in text and "Both arms start from step 2000." in text
    assert text.index("MSE only") < text.index("StrokeFocusLoss")
    assert "width 0.25, 1000 pretraining steps" in text and "80.0% of symbols (50.0% from blank crops" in text
    assert render(json.loads(json.dumps(summary))) == text
    with pytest.raises(ValueError, match="LABEL=DIR"):
        build(["no-equals-sign"])
    with pytest.raises(FileNotFoundError, match="textsr eval"):
        build([f"x={tmp_path / 'missing'}"])


def test_cli_writes_files_that_the_card_includes(tmp_path, repo_root, model_dir_any):
    from training.model_card import write_card

    a, _ = _arm(tmp_path, repo_root, "a", 0.40)
    model = tmp_path / "model"
    shutil.copytree(model_dir_any, model)
    subprocess.run([sys.executable, "-m", "training.ablation", "--arm", f"only arm={a}", "--out", str(model)], check=True,
                   cwd=repo_root, capture_output=True)
    assert json.loads((model / "ablation.json").read_text())["arms"]["only arm"]["ssim_gain"] > 0
    run = tmp_path / "run"
    run.mkdir()
    (run / "train_log.jsonl").write_text(json.dumps({"step": 1, "loss": 0.1, "time_s": 1.0}) + "\n")
    metrics = json.loads((a / "metrics.json").read_text())
    card = write_card(model, metrics, [run], repo_root / "training/configs/default_tsrn.yml", "synthetic.").read_text()
    assert "## Ablation" in card and "| only arm |" in card


def test_shipped_ablation_is_its_json_and_in_the_card(repo_root):
    """The committed table is rendered from the committed inputs, shows the numbers the notes quote, and the card has it."""
    from training.ablation import render

    folder = repo_root / "models/gestalt-tsrn-synth"
    summary = json.loads((folder / "ablation.json").read_text())
    text = (folder / "ablation.md").read_text()
    assert render(summary) == text
    assert text in (folder / "MODEL_CARD.md").read_text()
    arms = summary["arms"]
    for arm in arms.values():
        avg = arm["metrics"]["average"]
        assert arm["recognition_gain_points"] == pytest.approx(100 * (avg["accuracy"]["sr"] - avg["accuracy"]["bicubic"]))
    assert list(arms) == ARM_LABELS
    readme = (repo_root / "README.md").read_text().split("## Models")[1].split("\n## ")[0]
    for label in ARM_LABELS[1:]:  # the README quotes the other arms as measured
        assert f"{label} reads {100 * arms[label]['metrics']['average']['accuracy']['sr']:.1f}%" in readme


@pytest.mark.slow
def test_make_ablation_run_end_to_end(tmp_path, repo_root):
    """`make ablation-run` at toy size: every arm trained, converted, evaluated (two recognizers), the table."""
    from pathlib import Path

    from training.data.synth import generate

    data = tmp_path / "data"
    generate(data, train=16, test=2, seed=3, progress=False, val=2)
    venv = Path(sys.executable).parent.parent
    out = tmp_path / "card"
    subprocess.run(
        ["make", "-s", "-C", str(repo_root), "ablation-run", f"VENV={venv}", f"ABLATION={tmp_path / 'runs'}",
         f"ABLATION_DATA={data}", f"ABLATION_OUT={out}", "ABLATION_STEPS=2", "ARM_EXTRA=Global.print_batch_step=1"],
        check=True, capture_output=True, timeout=900,
    )
    summary = json.loads((out / "ablation.json").read_text())
    assert list(summary["arms"]) == ARM_LABELS
    for arm, terms_logged in ARM_TERMS.items():
        states = json.loads((tmp_path / "runs" / arm / "latest.states").read_text())
        assert states["global_step"] == 2 and states["best_metric"] == "accuracy"
        metrics = json.loads((tmp_path / "runs" / arm / "model" / "metrics.json").read_text())
        assert set(metrics["splits"]) == {"easy", "medium", "hard", "unseen"} and "heldout_accuracy" in metrics["average"]
        log = [json.loads(line) for line in (tmp_path / "runs" / arm / "train_log.jsonl").read_text().splitlines()]
        terms = {k for row in log for k in row if k.startswith("loss_")}
        assert terms == terms_logged, arm
    assert "for up to 2 steps of batch 8" in (out / "ablation.md").read_text()


@pytest.mark.slow
def test_make_ship_run_and_ship_default_end_to_end(tmp_path, repo_root):
    """`make ship-run ship-default` at toy size: one more stage from the committed start point (the network trained on,
    its generator trained alone, grafted), the residual scale chosen on val/: shipped if a scale reads more crops than
    bicubic at bicubic's fidelity, refused with the reason if none does; then with SHIP_SCALE given, converted with it
    (the generator bundled), evaluated on test/, with its card and pictures."""
    from pathlib import Path

    from core.manifest import read_manifest, sha256_file
    from training.data.synth import generate

    data = tmp_path / "data"
    generate(data, train=4, test=2, seed=3, progress=False, val=4)
    venv = Path(sys.executable).parent.parent
    model, runs = tmp_path / "model", tmp_path / "ship"
    toy = "Train.loader.batch_size_per_card=2 Global.print_batch_step=1"
    make = ["make", "-s", "-C", str(repo_root), f"VENV={venv}", f"ABLATION_DATA={data}", f"DEFAULT_MODEL={model}", f"SHIP_RUN={runs}",
            "SHIP_STEPS=2", "SHIP_PRIOR_STEPS=2", "SHIP_SCALES=0.5 1", f"SHIP_EXTRA={toy} Global.eval_batch_step=[1000,1000]",
            f"SHIP_PRIOR_EXTRA={toy} Global.prior_eval_step=1"]
    subprocess.run([*make, "ship-run"], check=True, capture_output=True, timeout=900)
    network = json.loads((runs / "network" / "latest.states").read_text())
    assert network["global_step"] == 2 and network["config"]["Global"]["ema_decay"] == 0.995
    assert network["config"]["Global"]["pretrained_model"] == "checkpoints/glyph-prior/model.pdparams"
    assert [r["step"] for r in read_jsonl(runs / "prior" / "prior_log.jsonl") if "prior_accuracy" in r] == [0, 1, 2]
    graft = runs / "graft.pdparams"
    ship = [*make, f"SHIP_CHECKPOINT={graft}", f"SHIP_TRAIN_DIRS={runs / 'network'}"]
    chosen = subprocess.run([*ship, "ship-default"], capture_output=True, text=True, timeout=900)
    sweep = json.loads((runs / "scale" / "residual_scale.json").read_text())
    assert {r["scale"] for r in sweep["rows"]} == {0.5, 1.0}
    if sweep["pick"] is None:
        assert chosen.returncode != 0 and "no pair reads better than bicubic" in chosen.stdout
        assert not (model / "manifest.json").exists()
    else:
        assert chosen.returncode == 0, chosen.stderr
        assert read_manifest(model).source["overrides"] == f"Architecture.Transform.residual_scale={sweep['pick']['scale']}"
    subprocess.run([*ship, "ship-default", "SHIP_SCALE=0.5"], check=True, capture_output=True, timeout=900)
    manifest = read_manifest(model)
    assert manifest.source["overrides"] == "Architecture.Transform.residual_scale=0.5"
    assert manifest.source["checkpoint"] == "graft.pdparams" and sha256_file(model / "source" / "graft.pdparams") == sha256_file(graft)
    assert manifest.text_prior.bundled and (model / manifest.text_prior.recognizer).is_file()
    assert set(json.loads((model / "metrics.json").read_text())["splits"]) == {"easy", "medium", "hard", "unseen"}
    card = (model / "MODEL_CARD.md").read_text()
    assert "2 steps (shipped: the last checkpoint, step 2), then `textsr convert -o Architecture.Transform.residual_scale=0.5`" in card
    assert f"`{manifest.text_prior.recognizer}`" in card and "## How it was trained" in card
    assert json.loads((model / "residual_scale.json").read_text())["rows"]
    for picture in ("grid.png", "training_curves.png", "residual_scale.png"):
        assert (model / picture).stat().st_size > 1000


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
