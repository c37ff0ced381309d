"""A network with a text prior converts to ONNX with a second input, and the service computes that input itself."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from convert.verify import render_text_crops
from core.manifest import read_manifest
from core.spec import PRIOR_CHARSET
from service.errors import ModelLoadError
from service.repository import load_model
from textsr.cli import main
from training.networks import build_network, load_checkpoint, save_checkpoint

DEFAULT = "training/configs/default_tsrn.yml"
PRIOR = ["-o", "Architecture.Transform.text_prior=true", "Architecture.Transform.srb_nums=1"]


@pytest.fixture(scope="module")
def converted(tmp_path_factory, repo_root, prior_network):
    tmp = tmp_path_factory.mktemp("prior")
    ckpt = save_checkpoint(prior_network(), tmp / "prior.pdparams")
    out = tmp / "onnx"
    assert main(["convert", "--config", str(repo_root / DEFAULT), "--checkpoint", str(ckpt), "--out", str(out), "--fp16", *PRIOR]) == 0
    return ckpt, out


def test_the_manifest_names_the_prior_and_its_recognizer(converted):
    from service.recognizer import default_model_path

    _, out = converted
    m = read_manifest(out)
    assert m.input.name == "lr" and m.input.shape == [-1, 3, 16, 64]
    assert m.text_prior.input.name == "prior" and m.text_prior.input.shape == [-1, len(PRIOR_CHARSET) + 2, 24]
    assert m.text_prior.recognizer == default_model_path().name and m.text_prior.characters == PRIOR_CHARSET
    assert all(g.verification.max_abs_diff <= g.verification.tolerance for g in m.graphs)
    assert "text_prior" in json.loads((out / "manifest.json").read_text())


def test_a_manifest_without_a_prior_is_written_as_before(repo_root, tmp_path):
    from core.manifest import write_manifest

    shipped = repo_root / "models/gestalt-tsrn-synth"
    path = write_manifest(tmp_path, read_manifest(shipped))
    assert path.read_text() == (shipped / "manifest.json").read_text()  # no "text_prior": null for older readers


def test_the_service_engine_equals_paddle_and_the_prior_matters(converted):
    ckpt, out = converted
    net = load_checkpoint(build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True), ckpt)
    net.eval()
    engine = load_model(out, "cpu", "fp32", 1).engine
    x = render_text_crops(5, (16, 64), seed=4)
    with paddle.no_grad():
        want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
        lr = paddle.to_tensor(x)
        # the same network fed a reading of other crops: the output moves, so the parity above tests the prior too
        other = np.clip(net(lr, net.prior.probabilities(lr)[::-1]).numpy(), 0, 1)
    got = engine(x)
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(other - want).max() > 1e-2
    # the service's reading of the crops is training's (ONNX Runtime and cv2 vs Paddle)
    with paddle.no_grad():
        np.testing.assert_allclose(engine.prior(x), net.prior.probabilities(paddle.to_tensor(x)).numpy(), atol=1e-4)


def test_a_prior_with_rows_of_its_own_converts_and_serves_as_paddle(tmp_path, repo_root, prior_network):
    net = prior_network(prior_rows=4)
    ckpt = save_checkpoint(net, tmp_path / "rows.pdparams")
    out = tmp_path / "onnx"
    rows = [*PRIOR, "Architecture.Transform.prior_rows=4"]
    assert main(["convert", "--config", str(repo_root / DEFAULT), "--checkpoint", str(ckpt), "--out", str(out), *rows]) == 0
    net.eval()
    x = render_text_crops(3, (16, 64), seed=5)
    with paddle.no_grad():
        want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
        lr = paddle.to_tensor(x)
        prior = net.prior.probabilities(lr)
        assert np.ptp(net.prior(prior, 64, 16).numpy(), axis=2).max() > 1e-2  # the map's rows differ: they are tested
    assert np.abs(load_model(out, "cpu", "fp32", 1).engine(x) - want).max() <= 1e-4


@pytest.mark.parametrize("tail", [False, True], ids=["trunk", "tail"])
def test_a_prior_with_glyphs_converts_and_serves_as_paddle(tmp_path, repo_root, prior_network, tail):
    """``prior_glyphs``: the graph takes the reading drawn as a third input, which the service draws with training's
    function, at the size the manifest names (the LR's; the SR's with ``prior_glyph_tail``): parity with Paddle (which
    draws its own), and the drawing matters."""
    from core.spec import GLYPHS_NAME

    extra = {"prior_glyph_tail": True} if tail else {}
    net = prior_network(prior_glyphs=True, **extra)
    ckpt = save_checkpoint(net, tmp_path / "glyphs.pdparams")
    out = tmp_path / "onnx"
    opts = [*PRIOR, "Architecture.Transform.prior_glyphs=true", *(["Architecture.Transform.prior_glyph_tail=true"] if tail else [])]
    assert main(["convert", "--config", str(repo_root / DEFAULT), "--checkpoint", str(ckpt), "--out", str(out), *opts]) == 0
    size = [32, 128] if tail else [16, 64]
    spec = read_manifest(out).text_prior
    assert spec.glyphs.name == GLYPHS_NAME and spec.glyphs.shape == [-1, 1, *size]
    net.eval()
    x = render_text_crops(4, (16, 64), seed=7)
    with paddle.no_grad():
        want = np.clip(net(paddle.to_tensor(x)).numpy(), 0, 1)
    engine = load_model(out, "cpu", "fp32", 1).engine
    assert {i.name for i in engine.session.get_inputs()} == {"lr", "prior", GLYPHS_NAME}
    assert np.abs(engine(x) - want).max() <= 1e-4
    blank = engine.sr(x, {"prior": engine.prior(x), GLYPHS_NAME: np.zeros((4, 1, *size), np.float32)})
    assert np.abs(blank - want).max() > 1e-2  # without the drawing the output moves: the parity above tests it


def test_served_end_to_end(converted):
    import cv2
    from fastapi.testclient import TestClient

    from service.http.app import create_app
    from service.repository import ModelRepository
    from service.settings import Settings
    from training.evaluate import onnx_upscaler

    _, out = converted
    x = render_text_crops(3, (16, 64), seed=9)
    model = load_model(out, "cpu", "fp32", 1)
    with onnx_upscaler(out) as upscale:  # the service's pipeline without HTTP (what `textsr eval` runs)
        np.testing.assert_allclose(upscale(x), model.engine(x), atol=1e-6)
    with TestClient(create_app(Settings(recognition=False), ModelRepository([model]))) as client:
        (info,) = client.get("/v1/models").json()["models"]
        assert info["text_prior"] == "PP-OCRv6_rec_small.onnx" and info["input_shape"] == [-1, 3, 16, 64]
        crop = np.ascontiguousarray((x[0].transpose(1, 2, 0)[..., ::-1] * 255).round().astype(np.uint8))
        png = cv2.imencode(".png", crop)[1].tobytes()
        r = client.post("/v1/upscale", files={"file": ("c.png", png, "image/png")}, headers={"Accept": "image/png"})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        sr = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
        want = model.engine(np.ascontiguousarray(crop[..., ::-1].transpose(2, 0, 1)[None] / 255.0, np.float32))[0]
        assert np.abs(sr.astype(float) - want.transpose(1, 2, 0) * 255).max() <= 1.0


def test_a_model_trained_on_another_recognizer_does_not_load(converted, tmp_path):
    import shutil

    _, out = converted
    copy = tmp_path / "m"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["text_prior"]["recognizer_sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="text prior was trained on PP-OCRv6_rec_small.onnx"):
        load_model(copy, "cpu", "fp32", 1)


def test_a_manifest_whose_prior_shape_is_not_the_graphs_does_not_load(converted, tmp_path):
    """The service draws and reads at the sizes the manifest names; one the graph does not take fails at load, named."""
    import shutil

    _, out = converted
    copy = tmp_path / "m"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["text_prior"]["input"]["shape"][2] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="text prior's input 'prior' is .* in the manifest, but the graph's is"):
        load_model(copy, "cpu", "fp32", 1)


def test_a_fine_tuned_prior_generator_ships_in_the_model_folder(repo_root, tmp_path, prior_network):
    """``prior_trainable``: the network's own recognizer copy is exported beside its graph, named in the manifest, and
    is what the service reads the crop with (not the installed recognizer): parity with Paddle holds, the bundled
    file matters, and a changed bundled file does not load."""
    import shutil

    from core.spec import PRIOR_GENERATOR_FILE

    paddle.seed(5)
    net = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_trainable=True)
    with paddle.no_grad():
        for name, p in net.named_parameters():
            if name.startswith(("block4", "block3.1", "prior_proj")) and not name.endswith(("_mean", "_variance")):
                p.set_value(paddle.randn(p.shape) * (0.05 if name.startswith("block4") else 0.5))
        head = next(p for p in net.prior.generator.parameters() if p.shape == [120, 18710])
        head.set_value(head + 0.3 * paddle.randn(head.shape))  # the fine-tuned copy reads differently from the original
    ckpt = save_checkpoint(net, tmp_path / "gen.pdparams")
    out = tmp_path / "onnx"
    opts = [*PRIOR, "Architecture.Transform.prior_trainable=true"]
    assert main(["convert", "--config", str(repo_root / DEFAULT), "--checkpoint", str(ckpt), "--out", str(out), *opts]) == 0
    spec = read_manifest(out).text_prior
    assert spec.bundled and spec.recognizer == PRIOR_GENERATOR_FILE and (out / PRIOR_GENERATOR_FILE).is_file()
    net.eval()
    engine = load_model(out, "cpu", "fp32", 1).engine
    x = render_text_crops(4, (16, 64), seed=6)
    lr = paddle.to_tensor(x)
    with paddle.no_grad():
        prior = net.prior.probabilities(lr).numpy()
        want = np.clip(net(lr).numpy(), 0, 1)
    np.testing.assert_allclose(engine.prior(x), prior, atol=1e-4)
    assert np.abs(engine(x) - want).max() <= 1e-4
    original = _installed_recognizers_prior(x)
    assert np.abs(original - prior).max() > 1e-2  # the installed recognizer would give another prior
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    with open(tampered / PRIOR_GENERATOR_FILE, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelLoadError, match="is not the manifest's"):
        load_model(tampered, "cpu", "fp32", 1)
    (tampered / PRIOR_GENERATOR_FILE).unlink()
    with pytest.raises(ModelLoadError, match="which is missing"):
        load_model(tampered, "cpu", "fp32", 1)
    # converting a plain prior network into the same folder drops the stale generator
    plain = save_checkpoint(prior_network(), tmp_path / "plain.pdparams")
    assert main(["convert", "--config", str(repo_root / DEFAULT), "--checkpoint", str(plain), "--out", str(out), *PRIOR]) == 0
    assert not (out / PRIOR_GENERATOR_FILE).exists() and not read_manifest(out).text_prior.bundled


def _installed_recognizers_prior(x: np.ndarray) -> np.ndarray:
    from training.networks.text_prior import TextPrior

    with paddle.no_grad():
        return TextPrior(8).probabilities(paddle.to_tensor(x)).numpy()


def test_the_benches_measure_a_text_prior_model(converted, repo_root, tmp_path):
    """The benches open a model folder as the service does, so a two-input graph is measured with its prior."""
    import os
    import subprocess
    import sys

    _, out = converted
    env = {**os.environ, "TEXTSR_BENCH_RESULTS": str(tmp_path)}
    subprocess.run([sys.executable, "bench/encode.py", "--model-dir", str(out), "--repeat", "3"], cwd=repo_root, env=env,
                   check=True, timeout=300, capture_output=True)
    (result,) = tmp_path.glob("encode-*.json")
    assert json.loads(result.read_text())["inference_us_per_crop"] > 0


def test_the_committed_glyph_prior_start_converts_and_beats_bicubic(repo_root, tmp_path):
    """``checkpoints/glyph-prior/model.pdparams`` (session 19's M, the start a later session ships from) converts with
    the recipe's config as its README says, with its generator bundled and its drawing at the SR's size, loads in the
    service, and its SR of synthetic test crops is closer to the HR than bicubic (the notes: +1.2 dB on test/)."""
    from service.images import bicubic
    from training.data.synth import make_sample
    from training.metrics import psnr_per_image

    out = tmp_path / "glyph-prior"
    ckpt = repo_root / "checkpoints/glyph-prior/model.pdparams"
    assert main(["convert", "--config", str(repo_root / "training/configs/prior_glyph_tsrn.yml"), "--checkpoint", str(ckpt),
                 "--out", str(out), "--name", "glyph-prior-tsrn-synth"]) == 0
    m = read_manifest(out)
    assert m.text_prior.bundled and m.text_prior.glyphs.shape == [-1, 1, 32, 128]
    engine = load_model(out, "cpu", "fp32", 1).engine
    samples = [make_sample(11, "test/medium", i) for i in range(32)]  # (HR, LR, label), uint8 RGB, not training's seed
    lr = np.stack([s[1].transpose(2, 0, 1) for s in samples]).astype(np.float32) / 255
    hr = np.stack([s[0].transpose(2, 0, 1) for s in samples]).astype(np.float32) / 255
    up = np.stack([bicubic(s[1], s[0].shape[:2]).transpose(2, 0, 1) for s in samples]).astype(np.float32) / 255
    gain = psnr_per_image(engine(lr), hr).mean() - psnr_per_image(up, hr).mean()
    assert gain > 0.5, gain
