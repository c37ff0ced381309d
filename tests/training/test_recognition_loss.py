"""Training looks through the service's own recognizer: the same numbers as ONNX Runtime, the same preprocessing
as the service, gradients into the image only, and a CTC term that equals CTC over all classes."""

from __future__ import annotations

import cv2
import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from service.engine import OrtEngine
from service.recognizer import ctc_greedy, default_model_path, prepare, target_width
from training.data.synth import make_sample
from training.losses import RecognitionLoss, log_softmax
from training.networks.onnx_graph import OnnxGraph
from training.networks.service_recognizer import ServiceRecognizer


@pytest.fixture(scope="module")
def recognizer() -> ServiceRecognizer:
    return ServiceRecognizer()


@pytest.fixture(scope="module")
def crops() -> tuple[list[np.ndarray], list[str]]:
    """Real rendered crops: 6 HR crops and their LR twins upscaled (blurry: the recognizer is less sure there)."""
    samples = [make_sample(11, "test/medium", i) for i in range(1, 7)]
    hr = [s[0] for s in samples]
    lr = [cv2.resize(s[1], (128, 32), interpolation=cv2.INTER_CUBIC) for s in samples]
    return hr + lr, [s[2] for s in samples] * 2


def _rgb01(images: list[np.ndarray]) -> paddle.Tensor:
    return paddle.to_tensor(np.stack([i.transpose(2, 0, 1) for i in images]).astype(np.float32) / 255.0)


def test_onnx_graph_matches_onnx_runtime_on_real_crops(recognizer, crops):
    images, labels = crops
    batch = np.stack([prepare(i) for i in images])
    ort = OrtEngine(default_model_path(), providers="cpu")(batch)
    with paddle.no_grad():
        ours = F.softmax(recognizer.graph(paddle.to_tensor(batch)), axis=-1).numpy()
    assert ours.shape == ort.shape and ours.shape[-1] == len(recognizer.characters)
    assert np.abs(ours - ort).max() <= 1e-4
    assert [t for t, _ in ctc_greedy(ours, recognizer.characters)] == [t for t, _ in ctc_greedy(ort, recognizer.characters)]
    assert sum(t == g for (t, _), g in zip(ctc_greedy(ours[:6], recognizer.characters), labels)) >= 5  # it reads HR


def test_differentiable_prepare_equals_the_services(recognizer, crops):
    rng = np.random.default_rng(0)
    shapes = [(32, 128), (16, 64), (40, 700), (60, 30)]  # SR output, LR, a long line (capped at 320), a tall crop
    for h, w in shapes:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours = recognizer.prepare(_rgb01([img])).numpy()[0]
        # the service resizes uint8 pixels, so its output is rounded to whole grey levels: at most one level apart
        assert np.abs(ours - prepare(img)).max() <= 2 / 255 + 1e-6, (h, w)
        # on float pixels the two resizes are the same function
        width = target_width(h, w)
        flt = cv2.resize(img[..., ::-1].astype(np.float32) / 255, (width, 48), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ours[:, :, :width], (flt.transpose(2, 0, 1) - 0.5) / 0.5, atol=1e-5)
        assert not ours[:, :, width:].any()  # zero padding on the right, as the service pads
    assert recognizer.prepare(_rgb01([crops[0][0]])).shape == [1, 3, 48, 320]


def test_gradients_reach_the_image_and_never_the_recognizer(recognizer, crops):
    assert list(recognizer.parameters()) == []  # weights are buffers: an optimiser cannot see them
    before = {k: v.numpy().copy() for k, v in recognizer.named_buffers()}
    image = _rgb01(crops[0][6:8])
    image.stop_gradient = False
    loss = RecognitionLoss(teacher_weight=1.0, ctc_weight=1.0)
    loss.recognizer = [recognizer]
    hr = _rgb01(crops[0][:2])
    value = loss(image, hr, crops[1][:2])
    value.backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    assert all(b.stop_gradient and b.grad is None for b in recognizer.buffers())
    assert all(np.array_equal(v.numpy(), before[k]) for k, v in recognizer.named_buffers())
    assert set(loss.terms) == {"pixel", "teacher", "ctc"} and loss.terms["teacher"] > 0 and loss.terms["ctc"] > 0
    assert loss(hr, hr, crops[1][:2]) is not None and loss.terms["teacher"] == pytest.approx(0, abs=1e-5)


def test_reduced_class_ctc_equals_ctc_over_all_classes():
    class Rec:  # the one method RecognitionLoss._ctc needs
        index = {c: i for i, c in enumerate("_abcdefghij", 0) if i}

        def encode(self, labels):
            return ServiceRecognizer.encode(self, labels)

    rng = np.random.default_rng(1)
    logits = paddle.to_tensor(rng.normal(0, 3, (3, 12, 300)).astype(np.float32))
    logits.stop_gradient = False
    labels = ["abc", "jj", "cafe"]
    reduced = RecognitionLoss._ctc(Rec(), log_softmax(logits), labels)
    (g_reduced,) = paddle.grad(reduced, logits)
    targets, lengths = Rec().encode(labels)
    full = F.ctc_loss(
        log_softmax(logits).transpose([1, 0, 2]), paddle.to_tensor(targets), paddle.full([3], 12, "int64"),
        paddle.to_tensor(lengths), blank=0, reduction="mean",
    )
    (g_full,) = paddle.grad(full, logits)
    assert float(reduced) == pytest.approx(float(full), rel=1e-5)
    np.testing.assert_allclose(g_reduced.numpy(), g_full.numpy(), atol=1e-5)


def test_log_softmax_is_paddles():
    x = paddle.to_tensor(np.random.default_rng(2).normal(0, 5, (2, 3, 50)).astype(np.float32))
    np.testing.assert_allclose(log_softmax(x).numpy(), F.log_softmax(x, axis=-1).numpy(), atol=1e-5)


def test_loss_switches_and_bad_settings():
    off = RecognitionLoss()
    assert off.recognizer is None  # no recognition term, no recognizer loaded
    x = paddle.zeros([1, 3, 32, 128])
    assert float(off(x, x + 0.5, ["a"])) == pytest.approx(0.25) and off.terms == {"pixel": pytest.approx(0.25)}
    with pytest.raises(ValueError, match="Loss.teacher must be one of"):
        RecognitionLoss(teacher="kld")
    for bad in (-1, "0.1", True):
        with pytest.raises(ValueError, match="Loss.ctc_weight must be a number >= 0"):
            RecognitionLoss(ctc_weight=bad)
    with pytest.raises(TypeError):
        RecognitionLoss(ctc_weigth=0.1)  # a misspelt key is an error, not ignored


def test_onnx_graph_refuses_unknown_operators(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Celu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    with pytest.raises(NotImplementedError, match="Celu"):
        OnnxGraph(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="no value named 'nope'"):
        OnnxGraph(default_model_path(), output="nope")


def test_feature_values_match_onnx_runtime_and_one_pass_gives_both(recognizer, crops, tmp_path):
    """OnnxGraph.values: the feature the perceptual teacher reads equals ONNX Runtime's value of that name (the graph
    re-exported with it as an output), and one pass returns it with the logits forward() gives."""
    import onnx

    layer = RecognitionLoss.FEATURE_LAYER
    model = onnx.load(str(default_model_path()))
    model.graph.output.append(onnx.helper.make_tensor_value_info(layer, onnx.TensorProto.FLOAT, None))
    exposed = tmp_path / "exposed.onnx"
    onnx.save(model, str(exposed))
    import onnxruntime as ort

    batch = np.stack([prepare(i) for i in crops[0]])
    want = ort.InferenceSession(str(exposed), providers=["CPUExecutionProvider"]).run([layer], {"x": batch})[0]
    with paddle.no_grad():
        both = recognizer.graph.values(paddle.to_tensor(batch), (recognizer.logits, layer))
        logits = recognizer.graph(paddle.to_tensor(batch))
    assert list(want.shape[1:]) == [192, 12, 80] and both[layer].shape == list(want.shape)
    assert np.abs(both[layer].numpy() - want).max() <= 1e-3 * np.abs(want).max()
    np.testing.assert_array_equal(both[recognizer.logits].numpy(), logits.numpy())
    with pytest.raises(ValueError, match="no value named 'nope'"):
        recognizer.graph.values(paddle.to_tensor(batch), ("nope",))


def test_fused_plan_computes_the_same_values_and_keeps_what_is_asked(recognizer, crops, monkeypatch):
    """OnnxGraph runs Conv + per-channel Add as one biased Conv and the written-out GELU as one Gelu: the unfused
    graph's values, in fewer operators; a value asked for is never fused away."""
    from collections import Counter

    from training.networks import onnx_graph

    graph, logits = recognizer.graph, recognizer.logits
    conv_out = next(outs[0] for op, ins, outs, _ in graph._all_nodes if op == "Conv" and len(ins) == 2)
    erf_in = next(ins[0] for op, ins, _, _ in graph._all_nodes if op == "Erf")
    batch = paddle.to_tensor(np.stack([prepare(i) for i in crops[0]]))
    monkeypatch.setattr(onnx_graph, "_fuse", lambda plan, const, keep: plan)
    unfused = OnnxGraph(default_model_path())
    with paddle.no_grad():
        want = unfused.values(batch, (logits, conv_out, erf_in))
        monkeypatch.undo()
        got = graph.values(batch, (logits,))[logits]
        asked = graph.values(batch, (logits, conv_out, erf_in))
    for name, value in [(logits, got), *asked.items()]:
        np.testing.assert_allclose(value.numpy(), want[name].numpy(), atol=1e-4 * np.abs(want[name].numpy()).max())
    ops, full = Counter(n[0] for n in graph._plans[(logits,)]), Counter(n[0] for n in graph._needed(graph._all_nodes, (logits,)))
    assert ops["Gelu"] == full["Erf"] == 13 and not ops["Erf"] and ops["Div"] == full["Div"] - 13
    assert ops["Add"] <= full["Add"] - 13 - 50  # the GELUs' and at least 50 convolutions' bias adds


def test_feature_teacher_is_zero_on_hr_and_pulls_sr_towards_it(crops):
    images, labels = crops
    hr, lr = _rgb01(images[:6]), _rgb01(images[6:])
    loss = RecognitionLoss(pixel_weight=0.0, teacher="feature", teacher_weight=1.0)
    assert float(loss(hr, hr, labels[:6])) == pytest.approx(0.0, abs=1e-9)
    sr = paddle.to_tensor(lr.numpy(), stop_gradient=False)
    value = loss(sr, hr, labels[:6])
    assert 0.05 < float(value) < 2 and set(loss.terms) == {"pixel", "teacher"}
    value.backward()
    step = paddle.to_tensor(sr.numpy() - 0.5 * sr.grad.numpy() / np.abs(sr.grad.numpy()).max() * 0.02)
    assert float(loss(step, hr, labels[:6])) < float(value)  # a small step down the gradient lowers it
    with pytest.raises(ValueError, match="no value named 'p2o.nope'"):
        RecognitionLoss(teacher="feature", teacher_weight=1.0, feature_layer="p2o.nope")


def test_eot_shows_sr_and_hr_through_the_same_random_view(crops):
    """``Loss.eot``: one random view (down-scale and back, noise) for SR and HR alike, drawn from Paddle's generator;
    the recognizer's terms see it, the pixel term does not."""
    images, labels = crops
    hr, lr = _rgb01(images[:6]), _rgb01(images[6:])
    loss = RecognitionLoss(teacher="feature", teacher_weight=1.0, eot=True)
    paddle.seed(3)
    a_sr, a_hr = loss.jitter(lr, hr)
    b_sr, _ = loss.jitter(lr, hr)
    paddle.seed(3)
    c_sr, _ = loss.jitter(lr, hr)
    np.testing.assert_array_equal(a_sr.numpy(), c_sr.numpy())  # repeatable under paddle.seed
    assert float((a_sr - b_sr).abs().max()) > 1e-3  # and a new view each call
    assert float((a_sr - lr).abs().mean()) > 1e-3  # the view changes the image
    same = loss.jitter(hr, hr)
    np.testing.assert_array_equal(same[0].numpy(), same[1].numpy())  # the same view for both
    assert float(loss(hr, hr, labels[:6])) == pytest.approx(0.0, abs=1e-9)  # so HR's view teaches HR nothing
    value = loss(lr, hr, labels[:6])
    assert loss.terms["pixel"] == pytest.approx(float(F.mse_loss(lr, hr)), rel=1e-6) and loss.terms["teacher"] > 0.05
    plain = RecognitionLoss(teacher="feature", teacher_weight=1.0)
    assert float(value) != pytest.approx(float(plain(lr, hr, labels[:6])), rel=1e-3)  # the teacher saw the view
    with pytest.raises(ValueError, match="Loss.eot must be true or false, got 'yes'"):
        RecognitionLoss(eot="yes")


def test_operating_scale_shows_the_recognizer_the_served_image(crops):
    """``Loss.operating_scale`` s: the recognizer's terms see bicubic + s x (SR - bicubic), the image a model exported
    with ``residual_scale: s`` serves; the pixel term still sees the SR; without the base it refuses."""
    images, labels = crops
    hr, base = _rgb01(images[:6]), _rgb01(images[6:])
    sr = base + 0.8 * (hr - base)  # an SR part-way from bicubic to HR
    half = RecognitionLoss(teacher="feature", teacher_weight=1.0, operating_scale=0.5)
    plain = RecognitionLoss(teacher="feature", teacher_weight=1.0)
    assert half.needs_base and not plain.needs_base
    value = float(half(sr, hr, labels[:6], base=base))
    served = base + 0.5 * (sr - base)
    assert half.terms["pixel"] == pytest.approx(float(F.mse_loss(sr, hr)), rel=1e-6)  # pixel: the full SR
    assert half.terms["teacher"] == pytest.approx(plain(served, hr, labels[:6]) - float(F.mse_loss(served, hr)), rel=1e-4)
    assert value == pytest.approx(half.terms["pixel"] + half.terms["teacher"], rel=1e-5)
    assert half.terms["teacher"] > plain(sr, hr, labels[:6]) - float(F.mse_loss(sr, hr))  # half way is further from HR
    with pytest.raises(ValueError, match="operating_scale 0.5 needs the bicubic base"):
        half(sr, hr, labels[:6])
    assert not RecognitionLoss(operating_scale=0.5).needs_base  # no recognizer term: nothing to look at
    for bad in (0, 1.5, True, "half"):
        with pytest.raises(ValueError, match=r"Loss.operating_scale must be a number in \(0, 1\]"):
            RecognitionLoss(operating_scale=bad)
