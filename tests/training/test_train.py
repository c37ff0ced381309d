"""Training: each loss lowers on a fixed batch after one step; save + resume continue identically."""

from __future__ import annotations

import json

import numpy as np
import paddle
import pytest

from training.config import ConfigError, architecture, load_config
from training.data.synth import generate
from training.losses import confusion_weights, load_stroke_table, stroke_sequences, teacher_forcing, telescope_sequences
from training.train import Trainer, TrainSettings

DEFAULT = "training/configs/default_tsrn.yml"
CONFIGS = {
    "MSELoss": (DEFAULT, ["Loss={name: MSELoss}"]),
    "RecognitionLoss": (DEFAULT, []),  # the default recipe
    "StrokeFocusLoss": ("training/configs/sr_tsrn_transformer_strock.yml", []),
    "TelescopeLoss": ("training/configs/sr_telescope.yml", ["Loss.confuse_dict_path=null"]),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    generate(root, train=6, test=2, seed=5, progress=False)
    return root


def config(repo_root, data, tmp_path, loss, *extra):
    opts = [
        f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}",
        f"Global.save_model_dir={tmp_path / 'out'}", "Train.loader.batch_size_per_card=2", "Train.loader.shuffle=true",
        "Architecture.Transform.srb_nums=1", "Architecture.Transform.STN=false", "Optimizer.lr.learning_rate=0.001",
        "Global.eval_batch_step=[0, 0]", *extra,
    ]
    path, loss_opts = CONFIGS[loss]
    return load_config(repo_root / path, [*loss_opts, *opts])


@pytest.mark.parametrize("loss", sorted(CONFIGS))
def test_one_step_lowers_the_loss(loss, repo_root, data, tmp_path):
    # the default recipe's Piecewise schedule ignores learning_rate; its bicubic-residual net starts at exact bicubic,
    # where Adam's first sign-like steps must be small to stay a descent step
    extra = ["Optimizer.lr.values=[0.00001,0.00001]"] if CONFIGS[loss][0] == DEFAULT else []
    t = Trainer(config(repo_root, data, tmp_path, loss, *extra), log=lambda s: None)
    lr, hr, labels = next(t.data.batches(2))

    def current() -> float:
        paddle.seed(0)
        t.model.train()
        with paddle.no_grad():
            return float(t.loss_fn(t.model(paddle.to_tensor(lr)), paddle.to_tensor(hr), labels))

    before = current()
    for _ in range(3):
        t.train_step(lr, hr, labels)
    assert current() < before


def test_momentum_optimizer_steps_with_the_gradient(repo_root, data, tmp_path):
    """Optimizer.name=Momentum: SGD with momentum, whose first step is exactly -lr * gradient (Adam's is ~lr per
    weight whatever the gradient); three steps lower the loss; an unknown name is refused with the choices."""
    cfg = config(repo_root, data, tmp_path, "MSELoss", "Optimizer.name=Momentum", "Optimizer.momentum=0.5",
                 "Optimizer.clip_norm=null", "Optimizer.lr.values=[0.005,0.005]")
    t = Trainer(cfg, log=lambda s: None)
    assert isinstance(t.optimizer, paddle.optimizer.Momentum) and t.settings.momentum == 0.5
    lr, hr, labels = next(t.data.batches(2))
    t.model.train()
    t.loss_fn(t.model(paddle.to_tensor(lr)), paddle.to_tensor(hr), labels).backward()
    tail = getattr(t.model, f"block{t.model.srb_nums + 3}")[-1].weight  # the zero-initialised output conv
    grad, before = tail.grad.numpy().copy(), tail.numpy().copy()
    t.model.clear_gradients()
    paddle.seed(0)
    first = None
    for _ in range(3):
        loss = t.train_step(lr, hr, labels)
        if first is None:
            first = loss
            np.testing.assert_allclose(tail.numpy() - before, -0.005 * grad, rtol=1e-3, atol=1e-9)
    assert t.train_step(lr, hr, labels) < first
    with pytest.raises(ConfigError, match=r"Optimizer.name 'Lion' is not supported; choose one of \['Adam', 'Momentum'\]"):
        Trainer(config(repo_root, data, tmp_path, "MSELoss", "Optimizer.name=Lion"), log=lambda s: None)


def test_resume_gives_identical_next_step(repo_root, data, tmp_path):
    cfg = config(repo_root, data, tmp_path, "MSELoss", "Global.seed=3")
    a = Trainer(cfg, log=lambda s: None)
    batches = list(a.data.batches(2, shuffle=True, seed=3))
    for lr, hr, labels in batches[:2]:
        a.train_step(lr, hr, labels)
    a.save("latest")
    a.train_step(*batches[2])
    expect = {k: v.numpy() for k, v in a.model.state_dict().items()}

    b = Trainer({**cfg, "Global": {**cfg["Global"], "checkpoints": str(tmp_path / "out" / "latest")}}, log=lambda s: None)
    assert b.step == 2
    b.train_step(*batches[2])
    for k, v in b.model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), expect[k], err_msg=k)
    states = json.loads((tmp_path / "out" / "latest.states").read_text())
    assert states["global_step"] == 2 and (tmp_path / "out" / "latest.pdopt").is_file()


def test_fit_writes_checkpoints_log_and_curves(repo_root, data, tmp_path):
    cfg = config(repo_root, data, tmp_path, "MSELoss", "Global.max_steps=2", "Global.eval_batch_step=[0, 1]", "Global.print_batch_step=1")
    result = Trainer(cfg, log=lambda s: None).fit()
    out = tmp_path / "out"
    for name in ("latest", "best_accuracy"):
        assert (out / f"{name}.pdparams").is_file() and (out / f"{name}.pdopt").is_file() and (out / f"{name}.states").is_file()
    assert (out / "curves.png").stat().st_size > 1000
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in rows) and result["eval"]["average"]["sr"]["psnr_paddleocr"] > 0
    assert set(result["eval"]["splits"]) == {"easy", "medium", "hard", "unseen"}
    keys = paddle.load(str(out / "latest.pdparams")).keys()
    assert all(k.startswith("transform.") for k in keys)  # PaddleOCR's BaseModel layout


def test_label_encodings():
    ti, tg, mask = teacher_forcing(telescope_sequences(["Ab1!", "x"]))
    assert tg.tolist() == [[11, 12, 2, 0], [34, 0, 0, 0]] and ti.tolist() == [[0, 11, 12, 2], [0, 34, 0, 0]]
    assert mask.sum() == 6
    table = load_stroke_table()
    assert len(table) == 62 and all(set(v) <= set("123456789") for v in table.values())
    assert stroke_sequences(["Hi"], table) == [[2, 1, 2, 2, 7, 0]]


def test_confusion_weights(tmp_path):
    assert np.array_equal(confusion_weights(None), np.ones((37, 37), np.float32))
    m = np.zeros((62, 62))
    m[36, 37] = m[36, 11] = 4.0  # 'a' read as 'b' and as 'B': weight 1/4 (the larger of the two case weights)
    (tmp_path / "c.json").write_text(json.dumps({"matrix": m.tolist()}))
    w = confusion_weights(tmp_path / "c.json")
    assert w.shape == (37, 37) and w[11, 12] == pytest.approx(0.25) and w[12, 11] == 1.0


def test_config_errors(repo_root, tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'Globl'"):
        load_config(repo_root / DEFAULT, ["Globl.seed=1"])
    with pytest.raises(ConfigError, match="Section.key=value"):
        load_config(repo_root / DEFAULT, ["Global.seed"])
    cfg = load_config(repo_root / DEFAULT, ["Global.seed=7", "Optimizer.lr.learning_rate=2e-4"])
    assert cfg["Global"]["seed"] == 7 and cfg["Optimizer"]["lr"]["learning_rate"] == pytest.approx(2e-4)


@pytest.mark.parametrize("key", ["Global.eval_recognition", "Global.best_needs_fidelity", "Train.loader.shuffle",
                                 "Train.loader.drop_last", "Architecture.Transform.STN",
                                 "Architecture.Transform.bicubic_residual"])
@pytest.mark.parametrize("value", ["maybe", "1", "'false'"])
def test_boolean_keys_must_be_booleans(key, value, repo_root):
    # bool("maybe") and bool("false") are both true: a flag that is not a YAML boolean is refused, naming the key
    cfg = load_config(repo_root / DEFAULT, [f"{key}={value}"])
    with pytest.raises(ConfigError, match=rf"{key.replace('.', '[.]')} must be true or false, got"):
        TrainSettings.from_config(cfg)
        architecture(cfg)
    for ok in ("true", "false"):
        cfg = load_config(repo_root / DEFAULT, [f"{key}={ok}", "Global.eval_recognition=true"] if key != "Global.eval_recognition"
                          else [f"{key}={ok}", f"Global.best_metric={'accuracy' if ok == 'true' else 'psnr'}"])
        TrainSettings.from_config(cfg)
        architecture(cfg)


@pytest.mark.parametrize("loss", ["TelescopeLoss", "StrokeFocusLoss"])
def test_recognizer_pretraining_feeds_the_sr_losses(loss, repo_root, data, tmp_path):
    from training.recognizer_train import RecognizerTrainer

    cfg = config(
        repo_root, data, tmp_path, loss, "Global.recognizer_steps=2", "Global.recognizer_learning_rate=0.0001",
        "Global.recognizer_width=0.125",
    )
    rt = RecognizerTrainer(cfg, log=lambda s: None)
    assert rt.model.width == 0.125
    _, hr, labels = next(rt.data.batches(2))

    def current() -> float:
        rt.model.eval()
        return float(rt.loss(hr, labels))

    before = current()
    for _ in range(3):
        rt.train_step(hr, labels)
    assert current() < before
    assert np.abs(rt.model.encoder.cnn.bn1._mean.numpy()).max() > 0  # BN learnt statistics while pretraining
    result = rt.fit()
    out = tmp_path / "out"
    assert (out / "recognizer.pdparams").is_file()
    assert json.loads((out / "recognizer_metrics.json").read_text()) == result
    assert result["eval_crops"] == 8  # 2 crops in each of the 4 test splits
    assert all(0 <= result[k] <= 1 for k in ("token_accuracy", "token_accuracy_without_image", "sequence_accuracy"))
    overrides = {"pretrained_recognizer": str(out / "recognizer.pdparams")}
    if loss == "TelescopeLoss":
        table = json.loads((out / "confuse.json").read_text())
        assert np.asarray(table["matrix"]).shape == (62, 62) and 0 <= result["char_accuracy"] <= 1
        cfg = {**cfg, "Loss": {**cfg["Loss"], "confuse_dict_path": str(out / "confuse.json")}}
    t = Trainer({**cfg, "Global": {**cfg["Global"], **overrides}}, log=lambda s: None)
    rec = t.loss_fn.recognizer
    assert not [k for k in t.model.state_dict() if "transformer" in k]  # the recognizer is the loss's, not the network's
    assert set(t.checkpointed.state_dict()) == set(t.model.state_dict()) | {f"{type(t.model).recognizer_attr}.{k}" for k in rec.state_dict()}
    np.testing.assert_array_equal(rec.generator_word_with_upperword.proj.weight.numpy(), rt.model.generator_word_with_upperword.proj.weight.numpy())
    assert all(p.stop_gradient for p in rec.parameters())


def test_piecewise_learning_rate_survives_resume(repo_root, data, tmp_path):
    lr = ["Optimizer.lr.name=Piecewise", "Optimizer.lr.decay_steps=[2]", "Optimizer.lr.values=[0.001, 0.0002]"]
    a = Trainer(config(repo_root, data, tmp_path, "MSELoss", *lr), log=lambda s: None)
    batch = next(a.data.batches(2))
    assert a.optimizer.get_lr() == pytest.approx(1e-3)
    for _ in range(2):
        a.train_step(*batch)
    assert a.optimizer.get_lr() == pytest.approx(2e-4)
    a.save("latest")
    b = Trainer(config(repo_root, data, tmp_path, "MSELoss", *lr, f"Global.checkpoints={tmp_path / 'out' / 'latest'}"), log=lambda s: None)
    assert b.optimizer.get_lr() == pytest.approx(2e-4)
    with pytest.raises(ValueError, match="one more value"):
        Trainer(config(repo_root, data, tmp_path, "MSELoss", *lr[:2], "Optimizer.lr.values=[0.1]"), log=lambda s: None)


def test_recognizer_width(repo_root, data, tmp_path):
    from core.spec import GESTALT_ALPHABET
    from training.config import recognizer_width
    from training.networks.recognizer import Transformer

    full = sum(int(np.prod(p.shape)) for p in Transformer(GESTALT_ALPHABET).parameters())
    small = Transformer(GESTALT_ALPHABET, 0.25)
    assert full > 60e6 and sum(int(np.prod(p.shape)) for p in small.parameters()) < full / 12
    text = paddle.zeros([2, 5], "int64")
    logits, attention = small(paddle.rand([2, 3, 32, 128]), text)
    assert logits.shape == [2, 5, len(GESTALT_ALPHABET)] and attention.shape == [2, 16, 5, 8 * 32]
    with pytest.raises(ValueError, match="recognizer width"):
        Transformer(GESTALT_ALPHABET, 0.3)
    for bad in ("0", "1.5", "0.3", "wide"):
        with pytest.raises(ConfigError, match="Global.recognizer_width"):
            recognizer_width(config(repo_root, data, tmp_path, "StrokeFocusLoss", f"Global.recognizer_width={bad}"))
    assert recognizer_width(config(repo_root, data, tmp_path, "StrokeFocusLoss")) == 1.0


def test_text_focus_run_continues_an_mse_checkpoint(repo_root, data, tmp_path):
    """The ablation's second arm: resume an MSE run's checkpoint (no recognizer keys) with StrokeFocusLoss."""
    from training.networks import CheckpointMismatch
    from training.networks.recognizer import Transformer

    mse = Trainer(config(repo_root, data, tmp_path, "MSELoss", "Optimizer.lr.values=[0.00001,0.00001]"), log=lambda s: None)
    batch = next(mse.data.batches(2))
    mse.train_step(*batch)
    ckpt = mse.save("latest")
    rec = tmp_path / "rec.pdparams"
    paddle.save(Transformer(mse.model.recognizer_alphabet, 0.125).state_dict(), str(rec))
    sf = ["Architecture.Transform.bicubic_residual=true", f"Global.checkpoints={ckpt}", "Global.recognizer_width=0.125"]
    with pytest.raises(CheckpointMismatch, match="r34_transformer"):  # no recognizer file: its keys are required
        Trainer(config(repo_root, data, tmp_path, "StrokeFocusLoss", *sf), log=lambda s: None)
    t = Trainer(config(repo_root, data, tmp_path, "StrokeFocusLoss", *sf, f"Global.pretrained_recognizer={rec}"), log=lambda s: None)
    assert t.step == 1
    np.testing.assert_array_equal(t.model.block1[0].weight.numpy(), mse.model.block1[0].weight.numpy())
    assert np.isfinite(t.train_step(*batch)) and t.step == 2
    with pytest.raises(CheckpointMismatch, match="wrong shape"):  # a recognizer of another width
        Trainer(config(repo_root, data, tmp_path, "StrokeFocusLoss", *sf[:2], f"Global.pretrained_recognizer={rec}"), log=lambda s: None)


def test_best_checkpoint_by_recognition_accuracy(repo_root, data, tmp_path):
    """Global.best_metric=accuracy keeps the checkpoint the service recognizer reads best; it needs eval_recognition."""
    cfg = config(repo_root, data, tmp_path, "MSELoss", "Global.max_steps=2", "Global.eval_batch_step=[0, 1]",
                 "Global.eval_recognition=true", "Global.best_metric=accuracy", "Optimizer.lr.values=[0.00001,0.00001]")
    lines = []
    t = Trainer(cfg, log=lines.append)
    result = t.fit()
    rows = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in evals] == [1, 2] and all("accuracy" in r["eval"]["average"] for r in evals)
    acc = evals[-1]["eval"]["average"]["accuracy"]  # the log line shows the raw crop's reading beside bicubic's
    assert any(f"vs bicubic {acc['bicubic']:.3f}, raw crop {acc['raw']:.3f}" in line for line in lines)
    best = max(evals, key=lambda r: r["eval"]["average"]["accuracy"]["sr"])  # the first of equals is kept
    states = json.loads((tmp_path / "out" / "best_accuracy.states").read_text())
    assert states["best_metric"] == "accuracy" and states["global_step"] == best["step"]
    assert states["best"] == best["eval"]["average"]["accuracy"]["sr"] and result["eval"]["average"]["accuracy"]["hr"] > 0
    for bad, match in (("Global.best_metric=loss", "Global.best_metric must be one of"),
                       ("Global.eval_recognition=false", "needs Global.eval_recognition=true")):
        with pytest.raises(ValueError, match=match):
            Trainer(config(repo_root, data, tmp_path, "MSELoss", "Global.best_metric=accuracy", bad), log=lambda s: None)


@pytest.mark.parametrize("run", ["deep-feature-teacher", "text-prior"])
def test_committed_resume_points_resume(run, repo_root, data, tmp_path):
    """checkpoints/<run>/ resumes with the overrides its README gives (the command after its entry): the same
    architecture, loss and optimizer settings, step and optimizer state come back, and a step runs from there."""
    import re

    folder = repo_root / "checkpoints" / run
    states = json.loads((folder / "latest.states").read_text())
    command = (repo_root / "checkpoints/README.md").read_text().split(f"`{run}/`")[1].split("```bash\n")[1].split("```")[0]
    overrides = [o.strip('"') for o in re.findall(r'"[^"]+"|\S+=\S+', command.split("-o", 1)[1].replace("\\\n", " "))]
    cfg = load_config(repo_root / DEFAULT, [
        *[o for o in overrides if not o.startswith(("Global.checkpoints=", "Global.save_model_dir="))],
        f"Global.checkpoints={folder / 'latest'}", f"Global.save_model_dir={tmp_path / 'out'}",
        f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}", "Train.loader.batch_size_per_card=2",
    ])
    assert cfg["Loss"] == {**states["config"]["Loss"], "name": "RecognitionLoss"}
    assert architecture(cfg) == architecture(states["config"])
    assert cfg["Optimizer"] == states["config"]["Optimizer"]  # the command continues at the learning rate it ended with
    assert cfg["Global"].get("ema_decay") == states["config"]["Global"].get("ema_decay")  # the average goes on, or stays off
    t = Trainer(cfg, log=lambda s: None)
    assert t.step == states["global_step"] > 0
    assert (t.ema is not None) == bool(states["config"]["Global"].get("ema_decay"))
    moments = [k for k in t.optimizer.state_dict() if "moment1" in str(k)]
    assert moments and any(float(np.abs(t.optimizer.state_dict()[k].numpy()).max()) > 0 for k in moments)
    lr, hr, labels = next(t.data.batches(2))
    assert np.isfinite(t.train_step(lr, hr, labels)) and t.step == states["global_step"] + 1


def test_best_checkpoint_needs_fidelity(repo_root, data, tmp_path, monkeypatch):
    """Global.best_needs_fidelity: a checkpoint whose SR is below bicubic on val PSNR or SSIM never wins over one that is
    not, however well it reads; without the flag the best reading wins."""
    def run(flag: str, evals: list[tuple[float, float, float]]) -> int:
        out = tmp_path / flag
        cfg = config(repo_root, data, tmp_path, "MSELoss", f"Global.save_model_dir={out}", f"Global.max_steps={len(evals)}",
                     "Global.eval_batch_step=[0, 1]", "Global.eval_recognition=true", "Global.best_metric=accuracy",
                     f"Global.best_needs_fidelity={flag}")
        t = Trainer(cfg, log=lambda s: None)
        results = iter(evals)

        def fake_evaluate():
            psnr_gain, ssim_gain, acc = next(results)
            return {"average": {"sr": {"psnr_paddleocr": 18 + psnr_gain, "ssim": 0.5 + ssim_gain},
                                "bicubic": {"psnr_paddleocr": 18.0, "ssim": 0.5},
                                "accuracy": {"sr": acc, "bicubic": 0.5, "raw": 0.52, "hr": 0.9}}}

        monkeypatch.setattr(t, "evaluate", fake_evaluate)
        t.fit()
        return json.loads((out / "best_accuracy.states").read_text())["global_step"]

    evals = [(-0.1, 0.01, 0.60), (0.2, 0.01, 0.55), (0.3, -0.001, 0.70), (0.3, 0.02, 0.56)]  # steps 1..4
    assert run("true", evals) == 4  # steps 1 and 3 fall below bicubic (PSNR, SSIM); of the others step 4 reads best
    assert run("false", evals) == 3
    assert run("true", [(-0.1, 0.0, 0.6), (0.0, -0.01, 0.7)]) == 2  # none faithful: the best reading is still kept


def test_ema_of_the_weights_is_evaluated_kept_and_resumed(repo_root, data, tmp_path):
    """Global.ema_decay: after each step the average moves by timm's rule; the average is what evaluation scores and
    <name>.pdparams holds (so `textsr convert` takes it), the trained weights go to <name>.train.pdparams, and a resumed
    run continues both exactly."""
    cfg = config(repo_root, data, tmp_path, "MSELoss", "Global.seed=3", "Global.ema_decay=0.5")
    a = Trainer(cfg, log=lambda s: None)
    batches = list(a.data.batches(2, shuffle=True, seed=3))
    weights = lambda layer: {k: v.numpy().copy() for k, v in layer.state_dict().items()}  # noqa: E731
    want = weights(a.model)
    for lr, hr, labels in batches[:2]:
        a.train_step(lr, hr, labels)
        d = min(0.5, (1 + a.step) / (10 + a.step))  # 2/11, then 3/12
        now = weights(a.model)
        want = {k: d * want[k] + (1 - d) * now[k] if now[k].dtype == np.float32 else now[k] for k in now}
    got = weights(a.ema)
    bn = next(k for k in got if k.endswith("_mean"))  # BatchNorm statistics are averaged too
    for k in ("block1.0.weight", bn):
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)
        assert not np.allclose(got[k], weights(a.model)[k])
    a.save("latest")
    out = tmp_path / "out"
    kept, trained = paddle.load(str(out / "latest.pdparams")), paddle.load(str(out / "latest.train.pdparams"))
    np.testing.assert_array_equal(np.asarray(kept["transform.block1.0.weight"]), got["block1.0.weight"])
    np.testing.assert_array_equal(np.asarray(trained["transform.block1.0.weight"]), weights(a.model)["block1.0.weight"])
    score = a.evaluate()["average"]["sr"]["psnr_paddleocr"]
    from training.evaluate import evaluate_sr

    assert score == evaluate_sr(a.ema, data / "test")["average"]["sr"]["psnr_paddleocr"]
    a.model.eval()  # evaluation mode: the running statistics stay as they are
    assert score != evaluate_sr(a.model, data / "test")["average"]["sr"]["psnr_paddleocr"]
    a.train_step(*batches[2])
    b = Trainer({**cfg, "Global": {**cfg["Global"], "checkpoints": str(out / "latest")}}, log=lambda s: None)
    b.train_step(*batches[2])
    for mine, theirs in ((b.model, a.model), (b.ema, a.ema)):
        for k, v in weights(mine).items():
            np.testing.assert_array_equal(v, weights(theirs)[k], err_msg=k)
    plain = Trainer({**cfg, "Global": {**cfg["Global"], "checkpoints": str(out / "latest"), "ema_decay": 0}}, log=lambda s: None)
    # a run without the average resumes the trained weights, not the average
    np.testing.assert_array_equal(weights(plain.model)["block1.0.weight"], np.asarray(trained["transform.block1.0.weight"]))
    plain.train_step(*batches[2])
    plain.save("latest")  # over the averaged run's files: its trained weights must not outlive them
    assert not (out / "latest.train.pdparams").exists()
    again = Trainer({**cfg, "Global": {**cfg["Global"], "checkpoints": str(out / "latest"), "ema_decay": 0}}, log=lambda s: None)
    np.testing.assert_array_equal(weights(again.model)["block1.0.weight"], weights(plain.model)["block1.0.weight"])
    for bad in (1, -0.1, "0.9", True):
        with pytest.raises(ConfigError, match=r"Global.ema_decay must be a number in \[0, 1\)"):
            TrainSettings.from_config({**cfg, "Global": {**cfg["Global"], "ema_decay": bad}})


def test_evaluation_reads_each_distinct_image_once():
    """Memoized (the trainer's evaluation recognizer): the same readings as the recognizer, in batch order; an image seen
    before, or twice in one batch, is not read again; the memory stays within max_entries."""
    from training.evaluate import Memoized

    read: list[int] = []

    def recognizer(batch: np.ndarray) -> list[tuple[str, float]]:
        read.extend(int(x[0, 0, 0]) for x in batch)
        return [(f"t{int(x[0, 0, 0])}", float(x.mean())) for x in batch]

    def images(*ids: int) -> np.ndarray:
        return np.stack([np.full((3, 4, 8), i, np.float32) for i in ids])

    memo = Memoized(recognizer, max_entries=4)
    assert memo(images(1, 2, 1)) == recognizer(images(1, 2, 1)) and read[:2] == [1, 2]
    read.clear()
    assert [t for t, _ in memo(images(2, 3, 1))] == ["t2", "t3", "t1"] and read == [3]
    memo(images(4, 5, 6))
    assert len(memo.memo) <= 4 and [t for t, _ in memo(images(6, 5))] == ["t6", "t5"]


def test_operating_scale_gets_the_networks_bicubic_base(repo_root, data, tmp_path, monkeypatch):
    """A loss that ``needs_base`` gets the network's own bicubic upscaling of the batch; a network without a bicubic
    residual (or with an STN, which warps the LR first) is refused at start."""
    t = Trainer(config(repo_root, data, tmp_path, "RecognitionLoss", "Loss.operating_scale=0.5"), log=lambda s: None)
    lr, hr, labels = next(t.data.batches(2))
    seen = {}
    forward = type(t.loss_fn).forward

    def spy(self, sr, hr_, labels_, base=None):
        seen["base"], seen["sr"] = base.numpy(), sr.numpy()
        return forward(self, sr, hr_, labels_, base=base)

    monkeypatch.setattr(type(t.loss_fn), "forward", spy)
    t.train_step(lr, hr, labels)
    bicubic = paddle.nn.functional.interpolate(paddle.to_tensor(lr), size=[32, 128], mode="bicubic", align_corners=False)
    np.testing.assert_allclose(seen["base"], bicubic.numpy(), atol=1e-6)
    # the zero-initialised tail: the network's first output is its base
    np.testing.assert_allclose(seen["sr"], seen["base"], atol=1e-6)
    for extra in (["Architecture.Transform.bicubic_residual=false"], ["Architecture.Transform.STN=true"]):
        with pytest.raises(ConfigError, match="needs Architecture.Transform.bicubic_residual: true and STN: false"):
            Trainer(config(repo_root, data, tmp_path, "RecognitionLoss", "Loss.operating_scale=0.5", *extra), log=print)
