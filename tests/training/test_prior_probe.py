"""The prior probe feeds a text-prior network four priors and reads the SR each gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ConfigError
from training.networks import save_checkpoint
from training.networks.text_prior import PRIOR_CHARSET, TextPrior
from training.prior_probe import PRIORS, forced, main


def test_each_prior_is_what_it_says():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(PRIOR_CHARSET) + 2), size=(2, 24)).transpose(0, 2, 1).astype(np.float32)
    labels = ["Tower", "17b"]
    assert forced("own", probs, labels) is probs
    sharp = forced("sharp", probs, labels)
    np.testing.assert_array_equal(sharp.argmax(1), probs.argmax(1))
    assert (sharp.sum(1) == 1).all() and set(np.unique(sharp)) == {0.0, 1.0}
    assert [t for t, _ in TextPrior.decode(forced("label", probs, labels))] == labels
    blank = forced("blank", probs, labels)
    assert (blank[:, 0] == 1).all() and blank.sum() == 2 * 24


def test_the_probe_writes_every_prior_at_every_strength(tmp_path, repo_root, capsys, prior_network):
    from training.data.synth import generate

    generate(tmp_path / "synth", train=1, test=4, seed=2, progress=False)
    net = prior_network()  # a prior that moves the output
    ckpt = save_checkpoint(net, tmp_path / "p.pdparams")
    config = str(repo_root / "training/configs/default_tsrn.yml")
    args = ["-c", config, "--checkpoint", str(ckpt), "--data", str(tmp_path / "synth/test"), "--out", str(tmp_path / "o"),
            "--scales", "1", "0.5"]
    with pytest.raises(ConfigError, match="text_prior"):
        main(args)
    assert main([*args, "-o", "Architecture.Transform.text_prior=true", "Architecture.Transform.srb_nums=1"]) == 0
    result = json.loads((tmp_path / "o/prior_probe.json").read_text())
    rows = {(r["prior"], r["scale"]): r for r in result["rows"]}
    assert set(rows) == {(k, s) for k in PRIORS for s in (1.0, 0.5)}
    crops = len(rows["own", 1.0]["hits"])
    assert crops >= 4 and all(r["vs_own"]["crops"] == crops for r in rows.values())
    assert rows["own", 1.0]["vs_own"]["only_first"] == rows["own", 1.0]["vs_own"]["only_second"] == 0
    assert rows["blank", 1.0]["psnr_gain"] != rows["own", 1.0]["psnr_gain"]  # the prior fed reaches the SR
    assert rows["own", 0.5]["psnr_gain"] != rows["own", 1.0]["psnr_gain"]  # and so does the strength
    from training.evaluate import evaluate_sr  # a strength is the network's own at that residual_scale

    net.eval()
    net.residual_scale = 0.5
    avg = evaluate_sr(net, tmp_path / "synth/test")["average"]
    assert avg["sr"]["psnr_paddleocr"] - avg["bicubic"]["psnr_paddleocr"] == pytest.approx(rows["own", 0.5]["psnr_gain"], abs=1e-4)
    assert (tmp_path / "o/prior_probe.png").stat().st_size > 0 and "| label | 1 |" in capsys.readouterr().out


def test_the_probe_reads_a_glyph_networks_drawings(tmp_path, repo_root, capsys, prior_network):
    """With ``prior_glyphs`` the probe also reads each prior's drawing alone: the label's drawing reads as the label."""
    from training.data.synth import generate

    generate(tmp_path / "synth", train=1, test=8, seed=3, progress=False)
    ckpt = save_checkpoint(prior_network(prior_glyphs=True), tmp_path / "g.pdparams")
    opts = ["Architecture.Transform.text_prior=true", "Architecture.Transform.srb_nums=1", "Architecture.Transform.prior_glyphs=true"]
    args = ["-c", str(repo_root / "training/configs/default_tsrn.yml"), "--checkpoint", str(ckpt), "--data",
            str(tmp_path / "synth/test"), "--out", str(tmp_path / "o"), "--scales", "1", "-o", *opts]
    assert main(args) == 0
    drawn = {r["prior"]: r for r in json.loads((tmp_path / "o/prior_probe.json").read_text())["drawn"]}
    assert set(drawn) == {"own", "label"} and all(r["vs_bicubic"]["crops"] >= 8 for r in drawn.values())
    assert drawn["label"]["accuracy"] >= 0.75  # the label, drawn, is read as the label
    assert "| drawing of | drawing % |" in capsys.readouterr().out
