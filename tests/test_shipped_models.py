"""Every model under models/ is complete: graph(s) matching the manifest, a model card whose figures
are the eval's, the comparison picture; the default model beats bicubic on its own test set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.manifest import read_manifest, sha256_file

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.json"))


def test_a_default_model_ships():
    assert SHIPPED, "models/ must hold the default model so that `make serve` runs out of the box"


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_model_folder_is_complete(folder):
    m = read_manifest(folder)
    for g in m.graphs:
        assert sha256_file(folder / g.file) == g.sha256
        assert g.verification.max_abs_diff <= g.verification.tolerance
        assert (folder / g.file).stat().st_size < 20 * 1024 * 1024  # small enough for git
    if m.text_prior is not None and m.text_prior.bundled:
        assert sha256_file(folder / m.text_prior.recognizer) == m.text_prior.recognizer_sha256
    assert all(f.stat().st_size < 50 * 1024 * 1024 for f in folder.rglob("*") if f.is_file())  # below GitHub's warning size
    card = (folder / "MODEL_CARD.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    avg = metrics["average"]
    assert f"{avg['sr']['psnr_paddleocr']:.2f}" in card and f"{avg['bicubic']['psnr_paddleocr']:.2f}" in card
    assert (folder / "grid.png").stat().st_size > 10_000
    assert m.name in card and m.backbone in card


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_model_beats_bicubic(folder):
    avg = json.loads((folder / "metrics.json").read_text())["average"]
    assert avg["sr"]["psnr_paddleocr"] > avg["bicubic"]["psnr_paddleocr"]
    assert avg["sr"]["ssim"] > avg["bicubic"]["ssim"]


DEFAULT = ROOT / "models" / "gestalt-tsrn-synth"


def models_section(repo_root: Path) -> str:
    """The README's Models section with its line breaks and runs of spaces folded into single spaces."""
    return " ".join((repo_root / "README.md").read_text().split("## Models")[1].split("\n## ")[0].split())


def test_default_metrics_belong_to_the_shipped_graph():
    """metrics.json names the graph it was measured on; that is the graph the service loads."""
    metrics = json.loads((DEFAULT / "metrics.json").read_text())
    graph = next(g for g in read_manifest(DEFAULT).graphs if g.precision == "fp32")
    assert metrics["model"] == {"name": "gestalt-tsrn-synth", "file": graph.file, "sha256": sha256_file(DEFAULT / graph.file)}


def test_default_metrics_remeasured_live(tmp_path):
    """The first crops of every test split, regenerated (gen-data is deterministic) and evaluated now, give exactly the
    per-crop recognition record the committed metrics.json holds, for both recognizers and every source (raw crop, bicubic, SR, HR)."""
    pytest.importorskip("paddle", reason="gen-data's renderer is in the train extra")
    from training.data.synth import write_split
    from training.evaluate import default_recognizer, evaluate_splits, heldout_recognizer, onnx_upscaler

    committed = json.loads((DEFAULT / "metrics.json").read_text())
    n = 16
    for split in committed["splits"]:
        write_split(tmp_path, f"test/{split}", n, seed=0, progress=False)
    with onnx_upscaler(DEFAULT) as upscale:
        live = evaluate_splits(upscale, tmp_path / "test", None, default_recognizer(), 0, heldout_recognizer())
    assert set(live["splits"]) == set(committed["splits"])
    for split, result in live["splits"].items():
        for key in ("correct", "heldout_correct"):
            for source, hits in result[key].items():
                assert hits == committed["splits"][split][key][source][:n], (split, key, source)


def verdict(accuracy: dict, pair: dict) -> str:
    """How the README may compare the SR's reading with the raw crop's: better or worse only when the paired test says
    so (p < 0.05), else as well as."""
    if pair["p"] >= 0.05:
        return "as well as"
    return "better than" if accuracy["sr"] > accuracy["raw"] else "worse than"


def test_default_model_claims(repo_root):
    """What the card and the README claim of the default model is what its metrics.json says, targets included."""
    from training.model_card import metrics_row, paired_sentence, targets_table

    metrics = json.loads((DEFAULT / "metrics.json").read_text())
    avg = metrics["average"]
    card = (DEFAULT / "MODEL_CARD.md").read_text()
    assert metrics_row("**average**", avg) in card and paired_sentence("Average of the splits", metrics) in card
    assert paired_sentence("Average of the splits", metrics, "raw") in card
    assert targets_table(metrics) in card and "### Targets" in card
    models = models_section(repo_root)
    rec, held = avg["accuracy"], avg["heldout_accuracy"]
    for value in (rec["sr"], rec["bicubic"], held["sr"], held["bicubic"]):
        assert f"{100 * value:.1f}%" in models
    psnr = avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"]
    assert f"{avg['sr']['psnr_paddleocr']:.2f} dB vs bicubic {avg['bicubic']['psnr_paddleocr']:.2f} dB ({psnr:+.2f})" in models
    # the README's advice follows the numbers: read the raw crop while the SR reads no better than it
    vs_raw = avg["sr_vs_raw"]
    service, heldout = verdict(rec, vs_raw["service"]), verdict(held, vs_raw["heldout"])
    assert ("/v1/recognize?source=raw" in models) == (service != "better than")
    assert (f"The raw crop as sent reads {100 * rec['raw']:.1f}% and {100 * held['raw']:.1f}%: the service recognizer reads "
            f"the SR {service} the raw crop (p = {vs_raw['service']['p']:.2g}), the held-out one reads the SR {heldout} the"
            f" raw crop (p = {vs_raw['heldout']['p']:.2g})") in models
    assert avg["sr"]["psnr_paddleocr"] > avg["bicubic"]["psnr_paddleocr"] and avg["sr"]["ssim"] > avg["bicubic"]["ssim"]
    assert f"SSIM {avg['sr']['ssim']:.4f} vs {avg['bicubic']['ssim']:.4f}" in models
    # the recognition docs quote the same test set
    readme = " ".join((repo_root / "README.md").read_text().split())
    assert (f"it reads the SR image ({100 * rec['sr']:.1f}%) {service} the raw crop as sent ({100 * rec['raw']:.1f}%; paired p ="
            f" {vs_raw['service']['p']:.2g}; bicubic {100 * rec['bicubic']:.1f}%)") in readme
    assert (f"A held-out recognizer (PP-OCRv4) reads the SR {heldout} the raw crop ({100 * held['sr']:.1f}% vs"
            f" {100 * held['raw']:.1f}%, paired p = {vs_raw['heldout']['p']:.2g})") in readme
    # the shipped strength is the one the README and the manifest name, picked by the committed sweep on val/
    from training.residual_scale import earlier_rows, pick, same_split

    sweep = json.loads((DEFAULT / "residual_scale.json").read_text())
    assert sweep["pick"] == pick(sweep["rows"]) and "val" in sweep["data"]
    same_split(earlier_rows(DEFAULT))  # one split: a later sweep can --include the shipped model's folder (README)
    overrides = read_manifest(DEFAULT).source["overrides"]
    assert overrides == f"Architecture.Transform.residual_scale={sweep['pick']['scale']}" and f"-o {overrides}" in models


def test_default_model_against_the_previous_default(repo_root):
    """The README's paired comparison with the previous default is computed from both models' per-crop readings."""
    from training.metrics import paired

    metrics = json.loads((DEFAULT / "metrics.json").read_text())
    previous = json.loads((DEFAULT / "previous_default.json").read_text())
    assert previous["model"]["sha256"] != metrics["model"]["sha256"] and set(previous["splits"]) == set(metrics["splits"])
    pairs = {key: paired("".join(metrics["splits"][s][key]["sr"] for s in metrics["splits"]),
                         "".join(previous["splits"][s][key] for s in metrics["splits"]))
             for key in ("correct", "heldout_correct")}
    service, heldout = pairs["correct"], pairs["heldout_correct"]
    models = models_section(repo_root)
    assert (f"{service['only_first']} are read right only on this model's output, {service['only_second']} only on the"
            f" previous one's, p = {service['p']:.2g}; held-out recognizer {heldout['only_first']} vs {heldout['only_second']}") in models


def test_default_reading_union(repo_root, tmp_path):
    """The README's oracle over seven readings of the test crops is the committed reading_union.json's: its evaluated
    readers are metrics.json's per-crop hits, its union and target follow from them and the generator's hits, and the
    generator's hits of the first crops of every test split, regenerated and read now, are the committed ones."""
    pytest.importorskip("paddle", reason="gen-data's renderer is in the train extra")
    from training.data.synth import write_split
    from training.reading_union import GENERATOR, generator_engine, generator_hits, union_table

    metrics = json.loads((DEFAULT / "metrics.json").read_text())
    union = json.loads((DEFAULT / "reading_union.json").read_text())
    assert set(union["splits"]) == set(metrics["splits"]) and union["target_points"] == 10
    n, engine = 16, generator_engine(DEFAULT)
    for split, result in union["splits"].items():
        evaluated = metrics["splits"][split]
        hits = {GENERATOR: result["generator_correct"]}
        hits |= {f"{r} {f}": evaluated[k][f] for r, k in (("service", "correct"), ("held-out", "heldout_correct"))
                 for f in ("raw", "bicubic", "sr")}
        assert result["readers"] == union_table(hits)
        assert result["target"] == pytest.approx(evaluated["accuracy"]["bicubic"] + 0.10)
        write_split(tmp_path, f"test/{split}", n, seed=0, progress=False)
        assert generator_hits(engine, tmp_path / "test" / split) == result["generator_correct"][:n], split
    avg = union["average"]
    assert (f"reads {100 * avg['readers'][-1]['union']:.1f}% of the test crops against the target's"
            f" {100 * avg['target']:.1f}%") in models_section(repo_root)


FAST = ROOT / "models" / "gestalt-tsrn-synth-fast"


def test_fast_model_is_the_previous_default(repo_root):
    """The fast model (no text prior) is the previous default the README compares with: crop for crop it reads what
    previous_default.json records, and it serves without a second graph."""
    fast = json.loads((FAST / "metrics.json").read_text())
    previous = json.loads((DEFAULT / "previous_default.json").read_text())
    for split, result in fast["splits"].items():
        assert result["correct"]["sr"] == previous["splits"][split]["correct"]
        assert result["heldout_correct"]["sr"] == previous["splits"][split]["heldout_correct"]
    assert read_manifest(FAST).text_prior is None and read_manifest(DEFAULT).text_prior is not None
    card = (DEFAULT / "MODEL_CARD.md").read_text()
    assert (repo_root / "training/configs/prior_glyph_tsrn_lineage.md").read_text() in card


def test_readme_ship_stage_is_what_make_ship_run_trains(repo_root):
    """`make ship-run` trains the next stage the way the shipped one was made, from the committed checkpoint the shipped
    folder converts: its step counts are the README's, and that checkpoint is the shipped source (same sha256)."""
    import re

    make = dict(re.findall(r"^(SHIP_STEPS|SHIP_PRIOR_STEPS|SHIP_START)\s*\?=\s*(\S+)", (repo_root / "Makefile").read_text(), re.M))
    steps, prior = int(make["SHIP_STEPS"]), int(make["SHIP_PRIOR_STEPS"])
    assert (f"the network on for {steps:,} steps, its prior generator alone (`textsr train-prior`) for {prior:,} steps, and the"
            f" generator grafted on (`make ship-run`)") in models_section(repo_root)
    source = read_manifest(DEFAULT).source
    assert source["checkpoint_sha256"] == sha256_file(repo_root / make["SHIP_START"])
    assert sha256_file(DEFAULT / "source" / source["checkpoint"]) == source["checkpoint_sha256"]
