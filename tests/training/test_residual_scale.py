"""training.residual_scale: every checkpoint at every scale on val/, the trainer's pick rule, files a user can read."""

from __future__ import annotations

import json

import paddle
import pytest

from core.errors import ConfigError
from training.data.synth import generate
from training.networks import build_network, save_checkpoint
from training.residual_scale import main, pick

DEFAULT = "training/configs/default_tsrn.yml"


def test_sweep_evaluates_each_pair_and_picks_by_the_trainers_rule(tmp_path, repo_root, capsys):
    generate(tmp_path / "d", train=0, test=0, val=16, seed=2, progress=False)
    paddle.seed(3)
    noisy = build_network("TSRN", bicubic_residual=True)
    noisy.block8[-1].weight.set_value(paddle.randn(noisy.block8[-1].weight.shape) * 0.02)  # a part that hurts fidelity
    checkpoints = [save_checkpoint(noisy, tmp_path / "noisy.pdparams"),
                   save_checkpoint(build_network("TSRN", bicubic_residual=True), tmp_path / "start.pdparams")]  # bicubic
    out = tmp_path / "out"
    code = main(["-c", str(repo_root / DEFAULT), *[a for c in checkpoints for a in ("--checkpoint", str(c))],
                 "--data", str(tmp_path / "d" / "val"), "--scales", "0.5", "1", "--out", str(out)])
    result = json.loads((out / "residual_scale.json").read_text())
    rows = {(r["checkpoint"].split("/")[-1], r["scale"]): r for r in result["rows"]}
    assert len(rows) == 4 and (out / "residual_scale.png").stat().st_size > 0
    assert rows["noisy.pdparams", 1.0]["psnr_gain"] < rows["noisy.pdparams", 0.5]["psnr_gain"] < 0  # half the part, less harm
    for scale in (0.5, 1.0):  # the starting network is bicubic whatever the scale
        assert rows["start.pdparams", scale]["psnr_gain"] == pytest.approx(0, abs=1e-3)
        assert rows["start.pdparams", scale]["accuracy"] == rows["start.pdparams", scale]["accuracy_bicubic"]
    assert result["pick"] == pick(result["rows"]) and code == (0 if result["pick"] else 1)
    assert not rows["noisy.pdparams", 1.0]["faithful"]

    # a later checkpoint competes with the rows already swept (--include); only merging needs no config
    later = tmp_path / "later"
    main(["-c", str(repo_root / DEFAULT), "--checkpoint", str(checkpoints[1]), "--data", str(tmp_path / "d" / "val"),
          "--scales", "0.4", "--include", str(out), "--out", str(later)])
    merged = json.loads((later / "residual_scale.json").read_text())
    assert merged["rows"][:4] == result["rows"]
    assert [(r["checkpoint"], r["scale"]) for r in merged["rows"][4:]] == [(str(checkpoints[1]), 0.4)]
    assert merged["pick"] == pick(merged["rows"]) and (later / "residual_scale.png").stat().st_size > 0
    main(["--data", str(tmp_path / "d" / "val"), "--include", str(out), "--include", str(later), "--out", str(tmp_path / "m")])
    assert len(json.loads((tmp_path / "m" / "residual_scale.json").read_text())["rows"]) == 9
    generate(tmp_path / "e", train=0, test=0, val=8, seed=5, progress=False)  # another split: not comparable
    with pytest.raises(ConfigError, match=r"not on one split: \(crops, bicubic accuracy\) \(8, .*\), \(16, "):
        main(["-c", str(repo_root / DEFAULT), "--checkpoint", str(checkpoints[1]), "--data", str(tmp_path / "e" / "val"),
              "--scales", "1", "--include", str(out), "--out", str(tmp_path / "x")])
    with pytest.raises(ConfigError, match="no residual_scale.json there"):
        main(["--data", str(tmp_path / "d" / "val"), "--include", str(tmp_path), "--out", str(tmp_path / "x")])

    # what `make ship-default` converts with
    capsys.readouterr()
    (out / "residual_scale.json").write_text(json.dumps({**result, "pick": {**result["rows"][0], "scale": 0.4}}))
    assert main(["--pick", str(out)]) == 0 and capsys.readouterr().out.strip() == "0.4"
    (out / "residual_scale.json").write_text(json.dumps({**result, "pick": None}))
    with pytest.raises(SystemExit):
        main(["--pick", str(out)])
    assert "found no scale that reads better than bicubic" in capsys.readouterr().err


def test_pick_reads_better_than_bicubic_then_is_most_faithful():
    def row(scale, acc, psnr, faithful=True):
        return {"scale": scale, "accuracy": acc, "accuracy_bicubic": 0.5, "psnr_gain": psnr, "faithful": faithful}

    rows = [row(0.3, 0.52, 0.4), row(0.4, 0.51, 0.6), row(0.5, 0.50, 0.8), row(0.6, 0.49, 1.0), row(0.7, 0.53, 1.2, False)]
    assert pick(rows)["scale"] == 0.4  # 0.5 only ties bicubic, 0.6 reads worse, 0.7 is below bicubic on SSIM
    assert pick(rows[2:4]) is None


def test_sweep_names_the_missing_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["--config", DEFAULT, "--checkpoint", "a.pdparams"])
    assert "a sweep needs --data, --out" in capsys.readouterr().err


def test_sweep_refuses_a_network_without_a_bicubic_residual_and_bad_scales(tmp_path, repo_root):
    cfg = tmp_path / "c.yml"
    cfg.write_text((repo_root / DEFAULT).read_text().replace("bicubic_residual: True", "bicubic_residual: False"))
    ckpt = str(save_checkpoint(build_network("TSRN"), tmp_path / "a.pdparams"))
    with pytest.raises(ConfigError, match="residual_scale needs bicubic_residual: true"):
        main(["-c", str(cfg), "--checkpoint", ckpt, "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match=r"scales must be in \(0, 1\], got 1.5"):
        main(["-c", str(repo_root / DEFAULT), "--checkpoint", ckpt, "--data", str(tmp_path), "--scales", "1.5", "--out", str(tmp_path / "o")])
