"""`textsr convert`: PaddleOCR checkpoint / inference model -> ONNX that computes what Paddle computes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import paddle
import pytest

from convert.verify import render_text_crops
from core.manifest import read_manifest, sha256_file
from tests.conftest import fp16_bound
from textsr.cli import main
from training.networks import build_network, build_training_layout, load_checkpoint, save_checkpoint

CONFIGS = {"TBSRN": "training/configs/sr_telescope.yml", "TSRN": "training/configs/sr_tsrn_transformer_strock.yml"}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module", params=["TBSRN", "TSRN"])
def converted(request, tmp_path_factory, repo_root):
    """A random-init training model saved as PaddleOCR does (transform. prefix), converted by the CLI."""
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    paddle.seed(7)
    ckpt = save_checkpoint(build_training_layout(name), tmp / "best_accuracy.pdparams")
    out = tmp / "onnx"
    args = ["convert", "--config", str(repo_root / CONFIGS[name]), "--checkpoint", str(ckpt), "--out", str(out)]
    if name == "TSRN":
        args.append("--fp16")
    assert main(args) == 0
    return name, ckpt, out


def test_onnx_equals_paddle_batch_1_and_7(converted):
    name, ckpt, out = converted
    net = load_checkpoint(build_network(name), ckpt)
    net.eval()
    session = _session(out / "model.onnx")
    rng = np.random.default_rng(0)
    for x in (rng.random((1, 3, 16, 64), np.float32), render_text_crops(7, (16, 64), seed=11)):
        want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
        got = session.run(["sr"], {"lr": x})[0]
        assert got.shape == (len(x), 3, 32, 128)
        assert np.abs(got - want).max() <= 1e-4


def test_graph_contract(converted):
    name, _, out = converted
    model = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["lr"] and [o.name for o in model.graph.output] == ["sr"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 16, 64]
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    ops = {n.op_type for n in model.graph.node}
    assert model.graph.node[-1].op_type == "Clip"
    assert ("GRU" in ops) == (name == "TSRN")  # TBSRN's GRU blocks are dead code, TSRN runs them
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["textsr.backbone"] == name and meta["textsr.scale"] == "2" and meta["textsr.lr_shape"] == "3,16,64"


def test_dynamic_batch_and_output_range(converted):
    _, _, out = converted
    session = _session(out / "model.onnx")
    single = session.run(["sr"], {"lr": render_text_crops(1, (16, 64), seed=5)})[0]
    for b in (3, 16):
        x = np.concatenate([render_text_crops(1, (16, 64), seed=5)] * b)
        y = session.run(["sr"], {"lr": x})[0]
        assert y.shape == (b, 3, 32, 128) and y.min() >= 0 and y.max() <= 1
        assert np.abs(y - single).max() <= 1e-5


def test_manifest(converted):
    name, ckpt, out = converted
    m = read_manifest(out)
    raw = json.loads((out / "manifest.json").read_text())
    assert m.backbone == name and m.algorithm == {"TBSRN": "Telescope", "TSRN": "Gestalt"}[name]
    assert m.input.shape == [-1, 3, 16, 64] and m.output.shape == [-1, 3, 32, 128] and m.scale == 2
    assert m.graph("fp32").sha256 == sha256_file(out / "model.onnx")
    assert m.source["checkpoint_sha256"] == sha256_file(ckpt)
    assert m.graph("fp32").verification.max_abs_diff <= 1e-4 and m.graph("fp32").verification.batch_sizes == [1, 7]
    assert {"paddle", "paddle2onnx", "onnx", "onnxruntime"} <= set(m.versions)
    assert raw["opset"] == 17 and raw["created"]


def test_fp16_graph_is_verified(converted):
    name, _, out = converted
    m = read_manifest(out)
    if name != "TSRN":
        assert not (out / "model.fp16.onnx").exists()
        with pytest.raises(KeyError, match="no fp16 graph"):
            m.graph("fp16")
        return
    g = m.graph("fp16")
    assert g.sha256 == sha256_file(out / g.file)
    assert g.verification.tolerance == 5e-2  # the converter's gate, as the README states it
    assert g.verification.max_abs_diff <= 1e-2  # what fp16 really costs here (measured 1.1e-3): well inside the gate
    x = render_text_crops(4, (16, 64))
    a, b = (_session(out / f).run(["sr"], {"lr": x})[0] for f in ("model.onnx", g.file))
    assert np.abs(a - b).max() <= fp16_bound(out)  # unseen crops: within twice the recorded error


def test_inference_model_directory(tmp_path):
    paddle.seed(2)
    net = build_network("TSRN")
    net.eval()
    spec = paddle.static.InputSpec([None, 3, 16, 64], "float32", "x")
    paddle.jit.save(paddle.jit.to_static(net, input_spec=[spec], full_graph=True), str(tmp_path / "infer" / "inference"))
    assert main(["convert", "--inference-dir", str(tmp_path / "infer"), "--algorithm", "Gestalt", "--out", str(tmp_path / "o")]) == 0
    m = read_manifest(tmp_path / "o")
    assert m.source["kind"] == "paddle-inference-model" and m.backbone == "TSRN"
    x = render_text_crops(7, (16, 64), seed=3)
    want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
    assert np.abs(_session(tmp_path / "o" / "model.onnx").run(["sr"], {"lr": x})[0] - want).max() <= 1e-4


def test_bicubic_residual_variant_converts(tmp_path, repo_root):
    """Our extension (output = bicubic(LR) + network) exports through paddle2onnx's Resize, fp32 and fp16."""
    paddle.seed(4)
    net = build_network("TSRN", bicubic_residual=True)
    tail = net.block7[-1]
    tail.weight.set_value(paddle.randn(tail.weight.shape) * 0.01)  # make the learned part matter
    ckpt = save_checkpoint(net, tmp_path / "ckpt.pdparams")
    cfg = repo_root / "training/configs/default_tsrn.yml"  # the shipped recipe is the residual variant
    assert "bicubic_residual: True" in cfg.read_text()
    assert main(["convert", "--config", str(cfg), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"), "--fp16"]) == 0
    net.eval()
    x = render_text_crops(7, (16, 64), seed=9)
    want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
    for name, tol in (("model.onnx", 1e-4), ("model.fp16.onnx", fp16_bound(tmp_path / "o"))):
        assert np.abs(_session(tmp_path / "o" / name).run(["sr"], {"lr": x})[0] - want).max() <= tol


def test_residual_scale_converts_and_scales_the_networks_part(tmp_path, repo_root):
    """`-o Architecture.Transform.residual_scale=0.4`: the ONNX output is bicubic + 0.4 * (the scale-1 output - bicubic),
    and the manifest records the override."""
    paddle.seed(5)
    net = build_network("TSRN", bicubic_residual=True)
    tail = net.block8[-1]  # zero at init: the network starts as bicubic
    tail.weight.set_value(paddle.randn(tail.weight.shape) * 0.01)
    ckpt = save_checkpoint(net, tmp_path / "ckpt.pdparams")
    cfg = repo_root / "training/configs/default_tsrn.yml"
    assert main(["convert", "--config", str(cfg), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
                 "-o", "Architecture.Transform.residual_scale=0.4"]) == 0
    net.eval()
    x = render_text_crops(7, (16, 64), seed=3)
    full = net(paddle.to_tensor(x)).numpy()
    bicubic = paddle.nn.functional.interpolate(paddle.to_tensor(x), size=[32, 128], mode="bicubic").numpy()
    assert np.abs(full - bicubic).max() > 0.05  # the network's part is not negligible
    got = _session(tmp_path / "o" / "model.onnx").run(["sr"], {"lr": x})[0]
    np.testing.assert_allclose(got, np.clip(bicubic + 0.4 * (full - bicubic), 0, 1), atol=1e-4)
    assert read_manifest(tmp_path / "o").source["overrides"] == "Architecture.Transform.residual_scale=0.4"
