"""Shared fixtures: tiny real assets made on the fly (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """A folder of converted models: the shipped models/ if it has one, else a random TSRN converted here."""
    if any((ROOT / "models").glob("*/manifest.json")):
        return ROOT / "models"
    pytest.importorskip("paddle", reason="no shipped model and no paddle to convert one")
    import paddle

    from convert.pipeline import convert
    from training.networks import build_network, save_checkpoint

    tmp = tmp_path_factory.mktemp("models")
    paddle.seed(0)
    ckpt = save_checkpoint(build_network("TSRN"), tmp / "ckpt.pdparams")
    convert(tmp / "m" / "test-tsrn", config=ROOT / "training/configs/sr_tsrn_transformer_strock.yml", checkpoint=ckpt, log=lambda s: None)
    return tmp / "m"


@pytest.fixture(scope="session")
def model_dir_any(models_root) -> Path:
    """One converted model folder (model.onnx + manifest.json)."""
    return sorted(models_root.glob("*/manifest.json"))[0].parent
