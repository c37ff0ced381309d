"""The service's side of a text prior: what it keeps of the recognizer's reading, and how it reads the LR batch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from core.manifest import TensorSpec, TextPriorSpec
from core.spec import PRIOR_CHARSET
from service.errors import ModelLoadError
from service.recognizer import prepare
from service.text_prior import TextPriorEngine, prior_of, recognizer_input


def test_prior_keeps_the_columns_then_the_rest_over_the_first_steps():
    rng = np.random.default_rng(0)
    probs = rng.random((2, 40, 10)).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    prior = prior_of(probs, np.array([0, 3, 7]), steps=24)
    assert prior.shape == (2, 4, 24) and prior.dtype == np.float32
    np.testing.assert_allclose(prior[:, :3], probs[:, :24, [0, 3, 7]].transpose(0, 2, 1))
    np.testing.assert_allclose(prior[:, 3], 1 - probs[:, :24, [0, 3, 7]].sum(-1), atol=1e-6)
    np.testing.assert_allclose(prior.sum(1), 1.0, atol=1e-6)


def test_the_recognizer_reads_the_float_batch_as_it_reads_a_crop():
    crops = np.random.default_rng(1).integers(0, 256, (3, 16, 64, 3), dtype=np.uint8)
    batch = recognizer_input(crops.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    want = np.stack([prepare(c) for c in crops])
    assert batch.shape == want.shape == (3, 3, 48, 320)
    assert np.abs(batch - want).max() <= 2 / 255 + 1e-6  # prepare resizes uint8 (rounded), the batch in float
    np.testing.assert_array_equal(batch[..., 192:], 0.0)  # the same right padding


def test_a_prior_the_recognizer_cannot_give_is_refused():
    from service.engine import OrtEngine
    from service.recognizer import default_model_path

    recognizer = OrtEngine(default_model_path(), providers="cpu")
    sr = SimpleNamespace(session=None, input_shape=[-1, 3, 16, 64], providers=["CPUExecutionProvider"], device="cpu")
    spec = TextPriorSpec(input=TensorSpec(name="prior", shape=[-1, 4, 24]), recognizer="r.onnx", recognizer_sha256="0", characters="ab\x07")
    with pytest.raises(ModelLoadError, match="lacks"):
        TextPriorEngine(sr, recognizer, spec)
    ok = TextPriorEngine(sr, recognizer, spec.model_copy(update={"characters": PRIOR_CHARSET}))
    assert ok.columns[0] == 0 and len(ok.columns) == len(PRIOR_CHARSET) + 1 and ok.steps == 24
