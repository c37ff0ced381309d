"""The converter's failures are clear and name what is wrong."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F
import pytest

from convert.errors import Paddle2OnnxError
from convert.pipeline import convert
from textsr.cli import main
from training.networks import build_network, save_checkpoint
from training.networks.blocks import Mish

TELESCOPE = "training/configs/sr_telescope.yml"


def _run(capsys, *args):
    code = main(["convert", *args])
    return code, capsys.readouterr().err


def test_missing_files(capsys, tmp_path, repo_root):
    code, err = _run(capsys, "--config", str(repo_root / TELESCOPE), "--checkpoint", str(tmp_path / "x.pdparams"), "--out", str(tmp_path))
    assert code == 2 and "checkpoint not found" in err
    code, err = _run(capsys, "--config", str(tmp_path / "no.yml"), "--checkpoint", "x", "--out", str(tmp_path))
    assert code == 2 and "config not found" in err
    code, err = _run(capsys, "--inference-dir", str(tmp_path), "--out", str(tmp_path / "o"))
    assert code == 2 and "holds no Paddle inference model" in err


def test_input_kinds_are_exclusive(capsys, tmp_path):
    code, err = _run(capsys, "--out", str(tmp_path))
    assert code == 2 and "either --config with --checkpoint, or --inference-dir" in err
    code, err = _run(capsys, "--config", "a.yml", "--out", str(tmp_path))
    assert code == 2 and "go together" in err


def test_residual_scale_is_checked(capsys, tmp_path, repo_root):
    ckpt = save_checkpoint(build_network("TSRN", bicubic_residual=True), tmp_path / "tsrn.pdparams")
    default = str(repo_root / "training/configs/default_tsrn.yml")
    for bad in ("0", "1.5", "x", "true"):
        code, err = _run(capsys, "--config", default, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                         "-o", f"Architecture.Transform.residual_scale={bad}")
        assert code == 2 and "Architecture.Transform.residual_scale must be a number in (0, 1], got" in err
    code, err = _run(capsys, "--config", default, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                     "-o", "Architecture.Transform.residual_scale=0.5", "Architecture.Transform.bicubic_residual=false")
    assert code == 2 and "residual_scale needs bicubic_residual: true" in err
    code, err = _run(capsys, "--inference-dir", str(tmp_path), "--out", str(tmp_path / "o"), "-o", "Global.seed=1")
    assert code == 2 and "config overrides (-o) need --config" in err


def test_unknown_algorithm(capsys, tmp_path, repo_root):
    cfg = tmp_path / "cfg.yml"
    cfg.write_text((repo_root / TELESCOPE).read_text().replace("algorithm: Telescope", "algorithm: SRGAN"))
    code, err = _run(capsys, "--config", str(cfg), "--checkpoint", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown algorithm 'SRGAN'" in err and "Gestalt" in err


def test_unknown_transform_key(capsys, tmp_path, repo_root):
    cfg = tmp_path / "cfg.yml"
    cfg.write_text((repo_root / TELESCOPE).read_text().replace("STN: True", "STN: True\n    n_blocks: 3"))
    code, err = _run(capsys, "--config", str(cfg), "--checkpoint", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2 and "unknown keys ['n_blocks']" in err


def test_config_checkpoint_mismatch(capsys, tmp_path, repo_root):
    ckpt = save_checkpoint(build_network("TSRN"), tmp_path / "tsrn.pdparams")
    code, err = _run(capsys, "--config", str(repo_root / TELESCOPE), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"))
    assert code == 2 and "does not match the network" in err and "missing keys" in err and "feature_enhancer" in err


def test_opset_floor(capsys, tmp_path):
    code, err = _run(capsys, "--inference-dir", str(tmp_path), "--out", str(tmp_path), "--opset", "11")
    assert code == 2 and "--opset must be >= 13" in err


def paddleocr_mish(self, x):
    return x * paddle.tanh(F.softplus(x))


def test_paddle2onnx_failure_names_operator(tmp_path, monkeypatch):
    """PaddleOCR's own Mish (x * tanh(softplus(x))) aborts paddle2onnx; we name the operator and the way out."""
    monkeypatch.setattr(Mish, "forward", paddleocr_mish)
    net = build_network("TSRN", srb_nums=1)
    net.eval()
    spec = paddle.static.InputSpec([None, 3, 16, 64], "float32", "x")
    paddle.jit.save(paddle.jit.to_static(net, input_spec=[spec], full_graph=True), str(tmp_path / "infer" / "inference"))
    with pytest.raises(Paddle2OnnxError) as err:
        convert(tmp_path / "o", inference_dir=tmp_path / "infer", algorithm="Gestalt", log=lambda s: None)
    assert err.value.operators == ["pd_op.softplus"]
    assert "softplus" in str(err.value) and "--checkpoint" in str(err.value)
