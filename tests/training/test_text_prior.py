"""The text prior: the service recognizer's reading of the LR crop, as a second input of the SR trunk."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from convert.verify import render_text_crops
from service.text_prior import glyph_image
from training.networks import CheckpointMismatch, build_network, load_checkpoint, save_checkpoint
from training.networks.text_prior import PRIOR_CHARSET, TextPrior


def _lr(n=4, seed=0):
    paddle.seed(seed)
    return paddle.rand([n, 3, 16, 64])


def test_prior_is_the_recognizers_reading_of_the_crop_columns():
    from service.recognizer import prepare
    from training.data.synth import make_sample
    from training.evaluate import default_recognizer

    prior = TextPrior(8)
    lrs = [make_sample(3, "test/medium", i)[1] for i in range(6)]  # (hr, lr, label): LR crops, uint8 RGB
    x = paddle.to_tensor(np.stack([im.transpose(2, 0, 1) for im in lrs]).astype(np.float32) / 255)
    probs = prior.probabilities(x).numpy()
    # blank, the characters, rest: each column is a distribution; only the crop's columns (64 px -> 192 of 320 -> 24 of 40)
    assert probs.shape == (6, len(PRIOR_CHARSET) + 2, 24)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (probs >= 0).all()
    # greedy CTC decoding of the prior's columns is what the service recognizer reads on the raw crop
    readings = default_recognizer()(np.stack([prepare(im) for im in lrs]))
    alphabet = "\0" + PRIOR_CHARSET + "\1"
    decoded = []
    for p in probs:
        best = p.argmax(0)
        decoded.append("".join(alphabet[k] for i, k in enumerate(best) if k not in (0, len(alphabet) - 1) and (i == 0 or k != best[i - 1])))
    assert decoded == [text for text, _ in readings]


def test_a_network_with_a_prior_starts_as_the_one_without(tmp_path):
    plain = build_network("TSRN", bicubic_residual=True, srb_nums=2)
    with paddle.no_grad():
        for p in plain.parameters():  # weights a trained network could have: the tail is no longer zero
            p.set_value(p + 0.05 * paddle.randn(p.shape))
    ckpt = save_checkpoint(plain, tmp_path / "plain.pdparams")
    prior = build_network("TSRN", bicubic_residual=True, srb_nums=2, text_prior=True)
    with pytest.raises(CheckpointMismatch, match="missing keys.*prior"):  # strict unless the prior's keys may be absent
        load_checkpoint(prior, ckpt)
    assert plain.added_prefixes == () and prior.added_prefixes == ("prior.", "prior_proj.")
    load_checkpoint(prior, ckpt, optional=prior.added_prefixes)
    plain.eval(), prior.eval()
    x = _lr()
    np.testing.assert_array_equal(prior(x).numpy(), plain(x).numpy())
    # ... and learns through it: the projections get a gradient, the recognizer's weights are not parameters
    prior.train()
    prior(x).mean().backward()
    assert all(float(proj.weight.grad.abs().sum()) > 0 for proj in prior.prior_proj)
    assert not [k for k in prior.state_dict() if "recognizer" in k or "graph" in k]
    assert sorted({k.split(".")[0] for k in prior.state_dict()} - {k.split(".")[0] for k in plain.state_dict()}) == ["prior", "prior_proj"]


def test_the_prior_changes_the_output_once_trained():
    net = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True)
    net.eval()
    x = _lr(2)
    before = net(x).numpy()
    with paddle.no_grad():  # the zero-initialised tail and trunk output (the network starts as bicubic) take values
        tail = net.block4[-1]
        tail.weight.set_value(paddle.full_like(tail.weight, 0.01))
        net.block3[1].weight.set_value(paddle.ones_like(net.block3[1].weight))
        base_only = net(x).numpy()
        for proj in net.prior_proj:
            proj.weight.set_value(paddle.full_like(proj.weight, 0.1))
    assert not np.array_equal(before, base_only)
    assert not np.allclose(net(x).numpy(), base_only, atol=1e-4)


def test_text_prior_is_a_transform_flag(repo_root):
    from training.config import ConfigError, architecture, load_config

    cfg = "training/configs/default_tsrn.yml"
    assert architecture(load_config(repo_root / cfg, ["Architecture.Transform.text_prior=true"])).kwargs["text_prior"] is True
    assert "text_prior" not in architecture(load_config(repo_root / cfg, [])).kwargs
    with pytest.raises(ConfigError, match="text_prior must be true or false"):
        architecture(load_config(repo_root / cfg, ["Architecture.Transform.text_prior=yes please"]))


def test_a_prior_run_starts_from_a_run_without_one_and_resumes_with_it(repo_root, tmp_path):
    from training.config import load_config
    from training.data.synth import generate
    from training.train import Trainer

    data = tmp_path / "synth"
    generate(data, train=4, test=2, seed=5, progress=False)
    opts = [f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}", "Loss={name: MSELoss}",
            "Train.loader.batch_size_per_card=2", "Architecture.Transform.srb_nums=1", "Global.eval_batch_step=[0, 0]"]

    def trainer(out, *extra):
        cfg = load_config(repo_root / "training/configs/default_tsrn.yml", [*opts, f"Global.save_model_dir={tmp_path / out}", *extra])
        return Trainer(cfg, log=lambda s: None)

    plain = trainer("plain")
    batch = next(plain.data.batches(2))
    for _ in range(3):  # past the zero-initialised tail and trunk output, through which the prior's gradient flows
        plain.train_step(*batch)
    start = plain.save("latest")
    run = trainer("prior", "Architecture.Transform.text_prior=true", f"Global.pretrained_model={start}.pdparams")
    np.testing.assert_array_equal(run.model.block1[0].weight.numpy(), plain.model.block1[0].weight.numpy())
    run.train_step(*batch)
    assert float(run.model.prior_proj[0].weight.abs().sum()) > 0  # the prior's layers learn
    saved = run.save("latest")
    resumed = trainer("prior2", "Architecture.Transform.text_prior=true", f"Global.checkpoints={saved}")
    np.testing.assert_array_equal(resumed.model.prior_proj[0].weight.numpy(), run.model.prior_proj[0].weight.numpy())
    with pytest.raises(CheckpointMismatch, match="prior"):  # resuming is strict: a run without the prior is not this run
        trainer("prior3", "Architecture.Transform.text_prior=true", f"Global.checkpoints={start}")


def test_lr_mult_scales_the_step_of_a_layer(repo_root, tmp_path):
    """Adam's first step moves every parameter with a gradient by lr (times its multiplier): exactly, up to epsilon."""
    from training.config import ConfigError, load_config
    from training.data.synth import generate
    from training.train import Trainer

    data = tmp_path / "synth"
    generate(data, train=4, test=2, seed=5, progress=False)
    opts = [f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}", "Loss={name: MSELoss}",
            "Train.loader.batch_size_per_card=2", "Architecture.Transform.srb_nums=1", f"Global.save_model_dir={tmp_path / 'o'}",
            "Architecture.Transform.bicubic_residual=false", "Optimizer.clip_norm=0", "Optimizer.lr.values=[0.001,0.001]"]
    mult = "Optimizer.lr_mult={block1: 10, block1.1: 3}"  # a dotted name (a sublayer) wins over its parent's
    t = Trainer(load_config(repo_root / "training/configs/default_tsrn.yml", [*opts, mult]), log=lambda s: None)
    before = {k: v.numpy().copy() for k, v in t.model.named_parameters()}
    t.train_step(*next(t.data.batches(2)))
    moved = {k: np.abs(v.numpy() - before[k]).max() for k, v in t.model.named_parameters() if k.startswith(("block1.", "block4."))}
    assert moved["block1.0.weight"] == pytest.approx(0.01, rel=1e-3)
    assert moved["block1.1._weight"] == pytest.approx(0.003, rel=1e-3)  # the PReLU
    assert moved["block4.0.conv.weight"] == pytest.approx(0.001, rel=1e-3)
    for bad, match in (("{blockX: 2}", "no layer 'blockX'"), ("{block2: 0}", "numbers > 0"), ("[1]", "numbers > 0")):
        with pytest.raises(ConfigError, match=match):
            Trainer(load_config(repo_root / "training/configs/default_tsrn.yml", [*opts, f"Optimizer.lr_mult={bad}"]), log=lambda s: None)


def test_prior_rows_start_as_the_repeated_map_and_learn_a_shape_per_row(prior_network, tmp_path):
    repeated = prior_network()
    ckpt = save_checkpoint(repeated, tmp_path / "repeated.pdparams")
    shaped = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_rows=4)
    with pytest.raises(CheckpointMismatch, match="missing keys.*prior.rows"):
        load_checkpoint(shaped, ckpt)
    load_checkpoint(shaped, ckpt, optional=shaped.added_prefixes)  # a run with one row goes on with rows of its own
    repeated.eval(), shaped.eval()
    x = _lr(2)
    np.testing.assert_allclose(shaped(x).numpy(), repeated(x).numpy(), atol=1e-5)  # float order only
    probs = shaped.prior.probabilities(x)
    assert np.ptp(shaped.prior(probs, 64, 16).numpy(), axis=2).max() < 1e-6  # every row the same, as built
    shaped.train()
    shaped(x).mean().backward()
    assert float(shaped.prior.rows.weight.grad.abs().sum()) > 0  # ... and the rows learn
    with paddle.no_grad():
        shaped.prior.rows.weight.set_value(shaped.prior.rows.weight + 0.1 * paddle.randn(shaped.prior.rows.weight.shape))
    rows_map = shaped.prior(probs, 64, 16).numpy()
    assert rows_map.shape == (2, 64, 16, 64) and np.ptp(rows_map, axis=2).max() > 1e-2  # now the rows differ


def test_prior_rows_is_checked(repo_root):
    from training.config import ConfigError, architecture, load_config

    cfg = repo_root / "training/configs/default_tsrn.yml"
    on = ["Architecture.Transform.text_prior=true"]
    assert architecture(load_config(cfg, [*on, "Architecture.Transform.prior_rows=8"])).kwargs["prior_rows"] == 8
    assert "prior_rows" not in architecture(load_config(cfg, [*on, "Architecture.Transform.prior_rows=0"])).kwargs
    with pytest.raises(ConfigError, match="prior_rows must be a whole number"):
        architecture(load_config(cfg, [*on, "Architecture.Transform.prior_rows=2.5"]))
    with pytest.raises(ConfigError, match="prior_rows needs text_prior"):
        architecture(load_config(cfg, ["Architecture.Transform.prior_rows=8"]))


def test_glyph_image_draws_each_character_where_its_columns_are():
    k = len(PRIOR_CHARSET) + 2
    probs = np.zeros((3, k, 8), np.float32)
    probs[:, 0] = 1  # all blank
    probs[1, :, 0:2] = 0
    probs[1, 1 + PRIOR_CHARSET.index("W"), 0:2] = 1  # "W" on the first quarter
    probs[2, :, 6:8] = 0
    probs[2, k - 1, 6:8] = 1  # the "rest" class on the last quarter: not a character we can draw
    out = glyph_image(probs, 16, 64)
    assert out.shape == (3, 1, 16, 64) and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    assert out[0].max() == 0 and out[2].max() == 0  # blanks and "rest" draw nothing
    ink = out[1, 0].sum(0)
    assert ink[:16].sum() > 0.9 * ink.sum() and out[1].max() > 0.9  # the W, in its columns, dark strokes
    rows = out[1, 0].sum(1)
    assert rows[:2].sum() == 0 and rows[-2:].sum() == 0  # vertically inside the crop


@pytest.mark.parametrize("word", ["minimum", "WEDNESDAY", "cadillac42"])
def test_crowded_glyphs_are_squeezed_into_their_slots_and_read(word):
    """A long word whose characters' columns are close (one column each, one blank between: 24 columns for a 64-pixel
    crop) is drawn one glyph per slot, not overlapping: the service recognizer reads the drawing as the word."""
    from service.recognizer import prepare
    from training.evaluate import default_recognizer

    k, steps = len(PRIOR_CHARSET) + 2, 24
    probs = np.zeros((1, k, steps), np.float32)
    probs[0, 0] = 1
    first = (steps - 2 * len(word) + 1) // 2
    for j, char in enumerate(word):
        probs[0, :, first + 2 * j] = 0
        probs[0, 1 + PRIOR_CHARSET.index(char), first + 2 * j] = 1
    ink = glyph_image(probs, 32, 128)[0, 0]
    image = prepare(np.repeat(255 * (1 - ink)[..., None], 3, axis=2))
    ((text, _),) = default_recognizer()(image[None])
    assert text.replace(" ", "") == word


def test_prior_glyphs_start_as_the_network_without_them_and_learn(prior_network, tmp_path):
    plain = prior_network()
    ckpt = save_checkpoint(plain, tmp_path / "plain.pdparams")
    drawn = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_glyphs=True)
    load_checkpoint(drawn, ckpt, optional=drawn.added_prefixes)
    plain.eval(), drawn.eval()
    x = paddle.to_tensor(render_text_crops(2, (16, 64), seed=1))  # crops with text: the reading draws something
    assert glyph_image(drawn.prior.probabilities(x).numpy(), 16, 64).max() > 0.5
    np.testing.assert_array_equal(drawn(x).numpy(), plain(x).numpy())
    drawn.train()
    drawn(x).mean().backward()
    assert float(drawn.prior.glyph.weight.grad.abs().sum()) > 0  # the drawing's convolution learns


def test_prior_glyphs_is_checked(repo_root):
    from training.config import ConfigError, architecture, load_config

    cfg = repo_root / "training/configs/default_tsrn.yml"
    on = ["Architecture.Transform.text_prior=true", "Architecture.Transform.prior_glyphs=true"]
    assert architecture(load_config(cfg, on)).kwargs["prior_glyphs"] is True
    with pytest.raises(ConfigError, match="prior_glyphs needs text_prior"):
        architecture(load_config(cfg, on[1:]))
    plain = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True)
    x = paddle.to_tensor(render_text_crops(1, (16, 64), seed=1))
    with pytest.raises(ValueError, match="built without glyphs"):  # a drawing handed to a prior without glyphs
        plain(x, None, paddle.zeros([1, 1, 16, 64]))


def test_prior_glyph_tail_starts_as_the_network_without_it_and_learns(prior_network, tmp_path):
    """A tail network loads a plain prior network's weights and is then the same function (its drawing's layers start at
    zero); the drawing, made at the SR's size, reaches the tail's weights' gradients and, once they are trained, the
    output."""
    plain = prior_network()
    ckpt = save_checkpoint(plain, tmp_path / "plain.pdparams")
    tailed = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_glyphs=True, prior_glyph_tail=True)
    load_checkpoint(tailed, ckpt, optional=tailed.added_prefixes)
    plain.eval(), tailed.eval()
    x = paddle.to_tensor(render_text_crops(2, (16, 64), seed=1))
    probs = tailed.prior.probabilities(x)
    drawn = tailed.prior.draw(probs, 16, 64)
    assert drawn.shape == [2, 1, 32, 128] and float(drawn.max()) > 0.5  # at the SR's size, with ink
    np.testing.assert_array_equal(tailed(x).numpy(), plain(x).numpy())
    tailed.train()
    tailed(x).mean().backward()
    assert float(tailed.prior.tail[-1].weight.grad.abs().sum()) > 0  # the tail's last convolution learns first
    trained = prior_network(prior_glyphs=True, prior_glyph_tail=True)  # its tail moved away from zero
    trained.eval()
    with paddle.no_grad():
        trained.prior.glyph.weight.set_value(paddle.zeros_like(trained.prior.glyph.weight))  # the trunk's copy off
        moved = trained(x, probs, drawn) - trained(x, probs, paddle.zeros_like(drawn))
    assert float(moved.abs().max()) > 1e-2  # the drawing moves the output through the tail alone


def test_the_trunk_sees_the_tails_drawing_area_averaged():
    """With a tail the trunk's drawing is the SR-size drawing averaged to the LR's size: close to drawing at the LR's
    size directly (so a glyph network's weights go on with a tail)."""
    import paddle.nn.functional as F

    net = build_network("TSRN", bicubic_residual=True, srb_nums=1, text_prior=True, prior_glyphs=True, prior_glyph_tail=True)
    x = paddle.to_tensor(render_text_crops(8, (16, 64), seed=1))
    probs = net.prior.probabilities(x)
    assert net.prior.glyph_size(16, 64) == (32, 128)
    direct = glyph_image(probs.numpy(), 16, 64)
    averaged = F.avg_pool2d(net.prior.draw(probs, 16, 64), 2).numpy()
    assert direct.max() > 0.5 and np.abs(averaged - direct).mean() < 0.25 * direct.mean()


def test_prior_glyph_tail_is_checked(repo_root):
    from training.config import ConfigError, architecture, load_config

    cfg = repo_root / "training/configs/default_tsrn.yml"
    on = ["Architecture.Transform.text_prior=true", "Architecture.Transform.prior_glyphs=true"]
    assert architecture(load_config(cfg, [*on, "Architecture.Transform.prior_glyph_tail=true"])).kwargs["prior_glyph_tail"]
    with pytest.raises(ConfigError, match="prior_glyph_tail needs prior_glyphs"):
        architecture(load_config(cfg, [on[0], "Architecture.Transform.prior_glyph_tail=true"]))
    with pytest.raises(ValueError, match="tail_scale needs glyphs"):
        TextPrior(8, tail_scale=2)


def test_the_prior_recipe_is_the_default_recipe_plus_its_prior_keys(repo_root, tmp_path):
    """``prior_glyph_tsrn.yml`` is the overrides session 18's run (e) was trained with, as one file: it differs from the
    default recipe in exactly those keys, and a trainer builds from it (its lr_mult names real layers), here from the
    committed start point ``checkpoints/glyph-prior/``."""
    from training.config import architecture, load_config
    from training.data.synth import generate
    from training.train import Trainer, TrainSettings

    def flat(d, prefix=""):
        return {k: v for key, val in d.items()
                for k, v in (flat(val, f"{prefix}{key}.").items() if isinstance(val, dict) and key != "lr_mult"
                             else [(f"{prefix}{key}", val)])}

    default = flat(load_config(repo_root / "training/configs/default_tsrn.yml"))
    recipe = load_config(repo_root / "training/configs/prior_glyph_tsrn.yml")
    changed = {k: v for k, v in flat(recipe).items() if default.get(k, "absent") != v}
    assert changed == {
        "Global.ema_decay": 0.995, "Global.prior_forcing": 1.0, "Loss.ctc_weight": 0.003, "Loss.prior_weight": 0.05,
        "Optimizer.lr_mult": {"prior": 10, "prior_proj": 10, "prior.generator": 0.5, "prior.glyph": 30, "prior.tail": 30},
        **{f"Architecture.Transform.{k}": True for k in ("text_prior", "prior_trainable", "prior_glyphs", "prior_glyph_tail")},
    }
    assert set(default) <= set(flat(recipe))
    kwargs = architecture(recipe).kwargs
    assert kwargs["prior_glyph_tail"] and kwargs["prior_trainable"]
    assert TrainSettings.from_config(recipe).lr_mult["prior.tail"] == 30
    data = tmp_path / "synth"
    generate(data, train=4, test=2, seed=5, progress=False)
    # checkpoints/README.md's command: train on from the committed start point (its weights load, a step runs)
    start = repo_root / "checkpoints/glyph-prior/model.pdparams"
    small = [f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}",
             f"Global.save_model_dir={tmp_path / 'o'}", f"Global.pretrained_model={start}", "Train.loader.batch_size_per_card=2"]
    t = Trainer(load_config(repo_root / "training/configs/prior_glyph_tsrn.yml", small), log=lambda s: None)
    tail = paddle.load(str(start))["transform.prior.tail.2.weight"]
    np.testing.assert_array_equal(t.model.prior.tail[2].weight.numpy(), tail.numpy())
    assert np.isfinite(t.train_step(*next(t.data.batches(2))))
