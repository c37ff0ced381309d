"""Prior forcing: the label written as a text prior (its best CTC path under the prior's columns), fed to the network
during training so it learns to draw what its prior reads."""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import pytest

from core.errors import ConfigError
from training.networks.text_prior import PRIOR_CHARSET, TextPrior, _best_path, aligned_prior


def _brute_force(log: np.ndarray, label: list[int]) -> float | None:
    """The best score of any column sequence that CTC collapses to ``label`` (None: none does)."""
    best = None
    for seq in itertools.product(sorted(set(label) | {0}), repeat=log.shape[1]):
        read = [k for i, k in enumerate(seq) if k and (i == 0 or seq[i - 1] != k)]
        if read == label:
            score = sum(log[k, t] for t, k in enumerate(seq))
            best = score if best is None else max(best, score)
    return best


def test_the_path_is_the_best_one_that_reads_the_label():
    rng = np.random.default_rng(1)
    for _ in range(150):
        steps, label = int(rng.integers(1, 7)), [int(v) for v in rng.integers(1, 4, size=int(rng.integers(0, 4)))]
        log = np.log(rng.dirichlet(np.ones(5), size=steps).T)
        ext = np.zeros(2 * len(label) + 1, np.int64)
        ext[1::2] = label
        path, want = _best_path(log, ext), _brute_force(log, label)
        if want is None:  # e.g. "aa" needs a blank between: three columns at least
            assert path is None
        else:
            assert sum(log[k, t] for t, k in enumerate(path)) == pytest.approx(want, abs=1e-9)


def test_an_aligned_prior_reads_the_label_and_a_label_too_long_keeps_the_prior():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(PRIOR_CHARSET) + 2), size=(4, 24)).transpose(0, 2, 1).astype(np.float32)
    labels = ["hello", "Door 42", "a-b", "x" * 13]  # spaces dropped, "-" is the rest class, 13 x's need 25 columns
    out = aligned_prior(probs, labels)
    assert out.shape == probs.shape and out.dtype == np.float32
    assert [t for t, _ in TextPrior.decode(out[:3])] == ["hello", "Door42", "ab"]
    assert set(np.unique(out[:3])) == {0.0, 1.0} and (out[:3].sum(1) == 1).all()
    assert out[2, -1].sum() == 1  # the "-" sits in the rest class
    np.testing.assert_array_equal(out[3], probs[3])


def _trainer(tmp_path, repo_root, *opts):
    from training.config import load_config
    from training.data.synth import generate
    from training.train import Trainer

    data = tmp_path / "synth"
    if not data.exists():
        generate(data, train=4, test=2, seed=5, progress=False)
    base = [f"Train.dataset.data_dir={data / 'train'}", f"Eval.dataset.data_dir={data / 'test'}", "Loss.teacher_weight=0",
            "Train.loader.batch_size_per_card=4", "Architecture.Transform.srb_nums=1", f"Global.save_model_dir={tmp_path / 'o'}"]
    return Trainer(load_config(repo_root / "training/configs/default_tsrn.yml", [*base, *opts]), log=lambda s: None)


def test_the_trainer_feeds_the_forced_share_of_crops_their_label(tmp_path, repo_root):
    for bad in ("2", "-0.1", "true"):
        with pytest.raises(ConfigError, match="prior_forcing"):
            _trainer(tmp_path, repo_root, "Architecture.Transform.text_prior=true", f"Global.prior_forcing={bad}")
    with pytest.raises(ConfigError, match="needs Architecture.Transform.text_prior"):
        _trainer(tmp_path, repo_root, "Global.prior_forcing=0.5")
    run = _trainer(tmp_path, repo_root, "Architecture.Transform.text_prior=true", "Global.prior_forcing=1")
    lr, hr, labels = next(run.data.batches(4))
    seen = []
    model = run.forward_model
    run.forward_model = lambda x, prior=None: seen.append(prior.numpy()) or model(x, prior)
    run.train_step(lr, hr, labels)
    assert [t for t, _ in TextPrior.decode(seen[0])] == [t.replace(" ", "") for t in labels]  # synthetic words: prior characters
    half = _trainer(tmp_path, repo_root, "Architecture.Transform.text_prior=true", "Global.prior_forcing=0.5")
    own = half.model.prior.probabilities(paddle.to_tensor(lr))
    forced = [half.forced_prior(own, labels).numpy() for half.step in range(6)]
    kept = [[np.array_equal(f[i], own.numpy()[i]) for i in range(4)] for f in forced]
    assert 0 < sum(map(sum, kept)) < 24  # some crops forced, some kept, drawn anew each step
    half.step = 3
    np.testing.assert_array_equal(half.forced_prior(own, labels).numpy(), forced[3])  # repeatable from the seed
