"""PaddleOCR checkpoints load strictly, prefixed or bare; mismatches name every bad key."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from training.networks import (
    CheckpointMismatch,
    build_network,
    build_training_layout,
    checkpoint_filter_fn,
    load_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def tsrn_training_state():
    paddle.seed(3)
    return build_training_layout("TSRN").state_dict()


def test_prefixed_and_bare_keys_load_into_export_model(tsrn_training_state):
    model = build_network("TSRN")
    for prefix in ("", "transform."):
        state = {prefix + k: v for k, v in tsrn_training_state.items()}
        out = checkpoint_filter_fn(state, model)
        assert set(out) == set(model.state_dict())
    model.set_state_dict(out)
    np.testing.assert_array_equal(model.block1[0].weight.numpy(), tsrn_training_state["block1.0.weight"].numpy())


def test_container_is_unwrapped(tsrn_training_state):
    model = build_network("TSRN")
    assert set(checkpoint_filter_fn({"state_dict": dict(tsrn_training_state)}, model)) == set(model.state_dict())


def test_training_model_requires_recognizer_keys(tsrn_training_state):
    model = build_training_layout("TSRN")
    state = {k: v for k, v in tsrn_training_state.items() if not k.startswith("r34_transformer.")}
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint_filter_fn(state, model)
    assert len(err.value.missing) == 214 and "r34_transformer" in str(err.value)


def test_mismatch_lists_missing_unexpected_and_shapes(tsrn_training_state):
    state = dict(tsrn_training_state)
    del state["block7.0.weight"]
    state["block9.weight"] = state["block1.0.bias"]
    state["block1.0.bias"] = paddle.zeros([65])
    with pytest.raises(CheckpointMismatch) as err:
        checkpoint_filter_fn(state, build_network("TSRN"))
    msg = str(err.value)
    assert err.value.missing == ["block7.0.weight"]
    assert err.value.unexpected == ["block9.weight"]
    assert err.value.wrong_shape == ["block1.0.bias [65] != [64]"]
    assert "1 missing keys: block7.0.weight" in msg and "1 unexpected" in msg and "wrong shape" in msg


def test_tbsrn_weights_do_not_fit_tsrn(tmp_path):
    path = save_checkpoint(build_network("TBSRN"), tmp_path / "tbsrn.pdparams")
    with pytest.raises(CheckpointMismatch, match=str(path)) as err:
        load_checkpoint(build_network("TSRN"), path)
    assert any("feature_enhancer" in k for k in err.value.unexpected)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(build_network("TSRN"), tmp_path / "nope.pdparams")
    bad = tmp_path / "bad.pdparams"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_checkpoint(build_network("TSRN"), bad)
