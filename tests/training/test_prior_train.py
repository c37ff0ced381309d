"""``textsr train-prior``: the text prior's generator fine-tuned alone, the rest of the network untouched."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from core.errors import ConfigError
from training.config import load_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, repo_root):
    """Tiny synthetic data, a frozen-prior network's checkpoint to start from, and the options that use them."""
    from training.data.synth import generate
    from training.networks import PaddleOCRLayout, build_network, save_checkpoint

    root = tmp_path_factory.mktemp("prior_train")
    generate(root / "synth", train=4, test=4, seed=7, progress=False)
    paddle.seed(3)
    start = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True)
    with paddle.no_grad():
        for p in start.prior_proj.parameters():  # not zero: these weights must come through untouched
            p.set_value(paddle.randn(p.shape) * 0.01)
    pretrained = save_checkpoint(PaddleOCRLayout(start), root / "start.pdparams")
    opts = [
        f"Train.dataset.data_dir={root / 'synth/train'}", f"Eval.dataset.data_dir={root / 'synth/test'}",
        "Train.loader.batch_size_per_card=2", "Architecture.Transform.srb_nums=1", "Global.eval_max_images=2",
        "Architecture.Transform.text_prior=true", "Architecture.Transform.prior_trainable=true",
        f"Global.pretrained_model={pretrained}", "Global.prior_steps=2", "Global.prior_eval_step=1",
        "Global.prior_learning_rate=0.001", "Global.print_batch_step=1", f"Global.save_model_dir={root / 'out'}",
    ]
    return repo_root / "training/configs/default_tsrn.yml", opts, root


def test_train_prior_refuses_what_it_cannot_train(tiny, capsys):
    from textsr.cli import main
    from training.prior_train import PriorTrainer

    config, opts, _ = tiny
    assert main(["train-prior", "-c", str(config), "-o", *opts, "Architecture.Transform.text_prior=false"]) == 2
    assert "textsr train-prior: error: textsr train-prior trains a text prior's generator" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="prior_trainable: true"):
        PriorTrainer(load_config(config, [*opts, "Architecture.Transform.prior_trainable=false"]), log=lambda s: None)
    for key, value in (("prior_steps", "0"), ("prior_steps", "1.5"), ("prior_learning_rate", "-1"), ("prior_eval_step", "x")):
        with pytest.raises(ConfigError, match=f"Global.{key} must be"):
            PriorTrainer(load_config(config, [*opts, f"Global.{key}={value}"]), log=lambda s: None)
    # the generator's own Adam: beta1 0.9 whatever the SR recipe's (0.5), lr 2e-5 unless set (session 14's notes)
    plain = PriorTrainer(load_config(config, [o for o in opts if "prior_learning_rate" not in o]), log=lambda s: None)
    assert plain.optimizer.get_lr() == pytest.approx(2e-5) and float(plain.optimizer._beta1) == 0.9
    with pytest.raises(ConfigError, match="Eval.dataset.data_dir"):
        PriorTrainer(load_config(config, [*opts, "Eval.dataset.data_dir=null"]), log=lambda s: None).fit()


def test_train_prior_moves_the_generator_only_and_writes_a_pretrained_model(tiny, capsys):
    from textsr.cli import main
    from training.evaluate import evaluate_splits
    from training.networks import PaddleOCRLayout, build_network, load_checkpoint
    from training.prior_train import PriorTrainer
    from training.train import Trainer

    config, opts, root = tiny
    run = PriorTrainer(load_config(config, opts), log=lambda s: None)
    with paddle.no_grad():  # the prior's reading here is the SR evaluation's prior_accuracy
        want = evaluate_splits(lambda lr: run.model(paddle.to_tensor(lr)).numpy(), root / "synth/test", 2,
                               prior=lambda lr: run.model.prior.read(paddle.to_tensor(lr)))
    assert run.evaluate()["average"] == want["average"]["prior_accuracy"]
    assert main(["train-prior", "-c", str(config), "-o", *opts]) == 0  # as a user runs it
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{\n") :])
    out = root / "out"
    assert result == json.loads((out / "prior_metrics.json").read_text())
    assert result["steps"] == 2 and sorted(result["evaluations"]) == ["0", "1", "2"]
    assert result["best"] == max(result["evaluations"].values()) >= result["start"]
    assert printed.count("the prior reads") == 3  # one line per evaluation
    rows = [json.loads(line) for line in (out / "prior_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert (out / "prior_curves.png").stat().st_size > 0

    start = paddle.load(str(root / "start.pdparams"))
    latest = paddle.load(str(out / "prior_latest.pdparams"))
    moved = [k for k in latest if ".prior.generator." in k and np.abs(latest[k].numpy() - _generator_start(k)).max() > 0]
    assert len(moved) > 50  # the generator learned
    for key, value in start.items():  # every other weight is the start's, bit for bit
        np.testing.assert_array_equal(latest[key].numpy(), value.numpy(), err_msg=key)
    assert set(latest) - set(start) == {k for k in latest if ".prior.generator." in k}

    # the best file is the network at its best evaluation, and `textsr train` starts from it
    best = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_trainable=True)
    load_checkpoint(PaddleOCRLayout(best), out / "prior_best.pdparams")
    with paddle.no_grad():
        again = evaluate_splits(lambda lr: best(paddle.to_tensor(lr)).numpy(), root / "synth/test", 2,
                                prior=lambda lr: best.prior.read(paddle.to_tensor(lr)))
    assert again["average"]["prior_accuracy"] == result["best"]
    sr = Trainer(load_config(config, [*opts, f"Global.pretrained_model={out / 'prior_best.pdparams'}"]), log=lambda s: None)
    trained = dict(sr.checkpointed.state_dict())
    best_file = paddle.load(str(out / "prior_best.pdparams"))
    for key, value in best_file.items():
        np.testing.assert_array_equal(trained[key.removeprefix("transform.")].numpy(), value.numpy(), err_msg=key)


_START = {}


def _generator_start(key: str) -> np.ndarray:
    """A generator weight as the service recognizer's file holds it (where every generator starts)."""
    if not _START:
        from training.networks.service_recognizer import ServiceRecognizer

        _START.update({f"transform.prior.generator.{k}": v.numpy() for k, v in ServiceRecognizer(trainable=True).state_dict().items()})
    return _START[key]


def test_train_prior_with_ema_evaluates_and_writes_the_average(tiny):
    """With Global.ema_decay the files hold the moving average (timm's warm-up: after one step d = 2/11), and training
    goes on from the trained weights."""
    from training.prior_train import PriorTrainer

    config, opts, root = tiny
    out = root / "ema"
    run = PriorTrainer(load_config(config, [*opts, "Global.ema_decay=0.9", "Global.prior_steps=1", f"Global.save_model_dir={out}"]),
                       log=lambda s: None)
    run.fit()
    saved = paddle.load(str(out / "prior_latest.pdparams"))
    d = 2 / 11
    moved = 0
    for k, p in run.generator.named_parameters():
        key = f"transform.prior.generator.{k}"
        start, trained = _generator_start(key), p.numpy()
        np.testing.assert_allclose(saved[key].numpy(), d * start + (1 - d) * trained, rtol=1e-5, atol=1e-7, err_msg=key)
        moved += bool(np.abs(trained - start).max() > 0)
    assert moved > 50  # the live generator kept its trained weights after the average was written


def test_graft_takes_the_generator_from_one_checkpoint_and_the_rest_from_another(prior_network, tmp_path, capsys):
    """``python -m training.graft``: the grafted checkpoint holds the generator's tensors of one checkpoint and every other
    tensor of the other; checkpoints without a trainable prior, or of another architecture, are refused by name."""
    from training.graft import GENERATOR_PREFIX, graft, main
    from training.networks import save_checkpoint

    sr, gen = prior_network(prior_trainable=True), prior_network(prior_trainable=True)
    with paddle.no_grad():
        for p in gen.parameters():
            p.set_value(p + 0.01)  # every tensor of this one differs: only its generator's may come through
    a, b = save_checkpoint(sr, tmp_path / "sr.pdparams"), save_checkpoint(gen, tmp_path / "gen.pdparams")
    main([str(a), str(b), str(tmp_path / "out.pdparams")])
    assert "grafted" in capsys.readouterr().out
    out, sa, sb = (paddle.load(str(p)) for p in (tmp_path / "out.pdparams", a, b))
    grafted = [k for k in out if k.startswith(GENERATOR_PREFIX)]
    assert grafted and len(grafted) < len(out)
    for k in out:
        np.testing.assert_array_equal(out[k].numpy(), (sb if k in grafted else sa)[k].numpy(), err_msg=k)
    plain = save_checkpoint(prior_network(), tmp_path / "plain.pdparams")
    with pytest.raises(ConfigError, match="no trainable prior generator"):
        graft(plain, b, tmp_path / "x.pdparams")
    other = save_checkpoint(prior_network(prior_trainable=True, prior_glyphs=True), tmp_path / "glyphs.pdparams")
    with pytest.raises(ConfigError, match="not the same architecture"):
        graft(a, other, tmp_path / "x.pdparams")
    with pytest.raises(SystemExit) as stop:  # the command line: one line naming what is wrong, exit 2
        main([str(tmp_path / "missing.pdparams"), str(b), str(tmp_path / "x.pdparams")])
    assert stop.value.code == 2 and "checkpoint not found" in capsys.readouterr().err and not (tmp_path / "x.pdparams").exists()
    (tmp_path / "junk.pdparams").write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit):
        main([str(a), str(tmp_path / "junk.pdparams"), str(tmp_path / "x.pdparams")])
    assert "cannot read checkpoint" in capsys.readouterr().err
