"""A trainable text prior: a fine-tuned copy of the service recognizer inside the SR network (TPGSR's generator)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import paddle
import pytest

from core.errors import ConfigError
from training.networks import build_network
from training.networks.onnx_graph import OnnxGraph
from training.networks.text_prior import PRIOR_CHARSET, TextPrior, prior_targets


def _crops(n=2, seed=0):
    from convert.verify import render_text_crops

    return render_text_crops(n, (16, 64), seed=seed)


def test_a_trainable_graph_starts_as_the_file_learns_and_writes_itself_back(tmp_path):
    from service.recognizer import default_model_path

    path = default_model_path()
    frozen, trained = OnnxGraph(path), OnnxGraph(path, trainable=True)
    assert not frozen.parameters()
    params = dict(trained.named_parameters())
    assert sum(int(np.prod(p.shape)) for p in params.values()) > 5_000_000  # the weights, not scalars or BN statistics
    x = paddle.randn([2, 3, 48, 320])
    np.testing.assert_array_equal(trained(x).numpy(), frozen(x).numpy())
    trained(x).mean().backward()
    assert all(p.grad is not None for p in params.values())  # every weight is reached by the gradient
    with paddle.no_grad():
        for p in params.values():
            p.set_value(p + 0.01 * paddle.randn(p.shape))
    out = trained.export(tmp_path / "tuned.onnx")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with paddle.no_grad():
        want = trained(x).numpy()  # the file's output: the softmax
    assert np.abs(got - want).max() <= 1e-4
    assert np.abs(got - session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]).max() == 0
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.abs(got - original.run(None, {original.get_inputs()[0].name: x.numpy()})[0]).max() > 1e-3


def test_prior_targets_map_characters_to_the_prior_classes():
    targets, lengths = prior_targets(["Ab9", "x-y z", ""])
    rest = len(PRIOR_CHARSET) + 1
    idx = PRIOR_CHARSET.index
    assert lengths.tolist() == [3, 4, 0]
    assert targets[0, :3].tolist() == [idx("A") + 1, idx("b") + 1, idx("9") + 1]
    assert targets[1, :4].tolist() == [idx("x") + 1, rest, idx("y") + 1, idx("z") + 1]  # "-" is rest, the space dropped


def test_the_generator_reads_as_the_service_recognizer_at_the_start():
    from service.recognizer import prepare
    from training.evaluate import default_recognizer

    x = _crops(4, seed=2)
    readings = default_recognizer()(np.stack([prepare((c.transpose(1, 2, 0) * 255).astype(np.uint8)) for c in x]))
    prior = TextPrior(8, trainable=True)
    frozen = TextPrior(8)
    lr = paddle.to_tensor(x)
    np.testing.assert_allclose(prior.probabilities(lr).numpy(), frozen.probabilities(lr).numpy(), atol=1e-5)
    keep = set(PRIOR_CHARSET)
    assert [t for t, _ in prior.read(lr)] == ["".join(c for c in t if c in keep) for t, _ in readings]


def test_the_prior_ctc_trains_the_generator_only_when_asked():
    from training.losses import RecognitionLoss

    net = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_trainable=True)
    assert any(k.startswith("prior.generator.") for k in net.state_dict())
    assert "prior." in net.added_prefixes  # weights trained without a generator load (it starts as the file)
    lr = paddle.to_tensor(_crops(2))
    hr = paddle.nn.functional.interpolate(lr, scale_factor=2)
    loss = RecognitionLoss(prior_weight=0.5)
    assert loss.needs_prior
    prior = net.prior.probabilities(lr)
    total = loss(net(lr, prior), hr, ["SHOP", "open"], prior=prior)
    assert set(loss.terms) == {"pixel", "prior"} and loss.terms["prior"] > 0
    total.backward()
    head = next(p for p in net.prior.generator.parameters() if p.shape == [120, 18710])
    assert head.grad is not None and float(head.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="needs the prior"):
        loss(net(lr), hr, ["SHOP", "open"])
    with pytest.raises(ConfigError, match="needs text_prior"):
        build_network("TSRN", prior_trainable=True)
    frozen = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True)
    assert not any(k.startswith("prior.generator.") for k in frozen.state_dict())


def test_a_training_step_moves_the_generator_and_resumes_exactly(repo_root, tmp_path):
    from training.config import load_config
    from training.data.synth import generate
    from training.train import Trainer

    data = tmp_path / "synth"
    generate(data, train=4, test=4, seed=5, progress=False)
    opts = [f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}", "Loss.teacher_weight=0",
            "Train.loader.batch_size_per_card=2", "Architecture.Transform.srb_nums=1", "Global.eval_max_images=2",
            "Architecture.Transform.text_prior=true", "Loss.prior_weight=0.01", f"Global.save_model_dir={tmp_path / 'o'}"]
    config = repo_root / "training/configs/default_tsrn.yml"
    with pytest.raises(ConfigError, match="prior_trainable"):
        Trainer(load_config(config, opts), log=lambda s: None)
    opts.append("Architecture.Transform.prior_trainable=true")
    run = Trainer(load_config(config, [*opts, "Optimizer.lr_mult={prior: 10, prior.generator: 1}"]), log=lambda s: None)
    head = next(p for p in run.model.prior.generator.parameters() if p.shape == [120, 18710])
    before = head.numpy().copy()
    run.train_step(*next(run.data.batches(2)))
    assert np.abs(head.numpy() - before).max() == pytest.approx(1e-4, rel=1e-3)  # Adam's first step at the base rate
    assert "prior" in run._terms
    result = run.evaluate()
    assert 0 <= result["average"]["prior_accuracy"] <= 1 and "prior_accuracy" in next(iter(result["splits"].values()))
    split = next(iter(result["splits"].values()))  # which crops the prior reads, paired with the SR's reading
    n = len(split["correct"]["sr"])
    assert len(split["prior_correct"]) == n and split["prior_correct"].count("1") / n == split["prior_accuracy"]
    pair = split["sr_vs_prior"]
    assert pair["crops"] == n and pair["only_first"] == sum(s > p for s, p in zip(split["correct"]["sr"], split["prior_correct"]))
    from training.evaluate import evaluate_splits  # the evaluation reuses each batch's prior: the same as reading anew

    model = run.ema if run.ema is not None else run.model
    with paddle.no_grad():
        alone = evaluate_splits(lambda lr: model(paddle.to_tensor(lr)).numpy(), data / "test", 2,
                                prior=lambda lr: model.prior.read(paddle.to_tensor(lr)))
    assert alone["average"]["prior_accuracy"] == result["average"]["prior_accuracy"]
    assert alone["average"]["sr"] == result["average"]["sr"]
    saved = run.save("latest")
    resumed = Trainer(load_config(config, [*opts, f"Global.checkpoints={saved}"]), log=lambda s: None)
    again = next(p for p in resumed.model.prior.generator.parameters() if p.shape == [120, 18710])
    np.testing.assert_array_equal(again.numpy(), head.numpy())


def test_a_label_the_prior_cannot_align_is_left_out_of_its_ctc():
    """CTC needs a column per character (and one more per repeated pair): a longer label has no alignment; it is left
    out instead of making the step's loss infinite, and the term is the per-character mean of the others."""
    from training.losses import prior_ctc as ctc

    paddle.seed(1)
    prior = paddle.nn.functional.softmax(paddle.randn([3, len(PRIOR_CHARSET) + 2, 24]), axis=1)
    both = ctc(prior, ["SHOP", "x" * 13, "open"])  # 13 x's need 25 columns: 13 + 12 repeats
    assert np.isfinite(float(both))
    assert float(both) == pytest.approx(float(ctc(prior[::2], ["SHOP", "open"])), rel=1e-5)
    one = float(ctc(prior[:1], ["SHOP"]))
    total = float(paddle.nn.functional.ctc_loss(
        paddle.log(prior[:1]).transpose([2, 0, 1]), paddle.to_tensor(prior_targets(["SHOP"])[0]),
        paddle.to_tensor([24], dtype="int64"), paddle.to_tensor([4], dtype="int64"), blank=0, reduction="sum"))
    assert one == pytest.approx(total / 4, rel=1e-5)  # per label character
    assert float(ctc(prior[:1], ["y" * 30])) == 0
