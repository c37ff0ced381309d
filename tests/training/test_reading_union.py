"""The union over readers of the LR crop: which crops any of them reads, beside the recognition target."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import DataError
from core.manifest import read_manifest
from service.errors import ModelLoadError
from training.reading_union import GENERATOR, generator_engine, generator_hits, main, reading_union, union_table


def test_the_union_grows_by_the_crops_only_the_new_reader_gets():
    rows = union_table({"a": "1100", "b": "1010", "c": "0000", "d": "0001"})
    assert [r["accuracy"] for r in rows] == [0.5, 0.5, 0.0, 0.25]
    assert [r["union"] for r in rows] == [0.5, 0.75, 0.75, 1.0]
    with pytest.raises(DataError, match="b: 3 crops, the readers before it 4"):
        union_table({"a": "1100", "b": "101"})


@pytest.fixture(scope="module")
def prior_model(models_root):
    found = [m.parent for m in sorted(models_root.glob("*/manifest.json")) if read_manifest(m.parent).text_prior]
    assert found, f"no model with a text prior under {models_root}"
    return found[0]


def test_the_generator_reads_clean_crops_and_misses_blank_ones(tmp_path, prior_model):
    import cv2
    import lmdb

    from training.data.synth import _png, make_sample

    def write(folder, lr_of):
        env = lmdb.open(str(folder), map_size=64 << 20)
        with env.begin(write=True) as txn:
            for i in range(1, 9):
                hr, _, label = make_sample(7, "val", i)
                txn.put(b"image_hr-%09d" % i, _png(hr))
                txn.put(b"image_lr-%09d" % i, _png(lr_of(hr)))
                txn.put(b"label-%09d" % i, label.encode())
            txn.put(b"num-samples", b"8")
        env.close()
        return folder

    clean = write(tmp_path / "clean", lambda hr: cv2.resize(hr, (64, 16), interpolation=cv2.INTER_AREA))
    blank = write(tmp_path / "blank", lambda hr: np.full((16, 64, 3), 128, np.uint8))
    engine = generator_engine(prior_model)
    assert generator_hits(engine, clean).count("1") >= 6
    assert generator_hits(engine, blank) == "0" * 8


def test_the_generator_and_the_evaluated_readers_make_the_union(tmp_path, prior_model, plain_model_dir, capsys):
    from training.data.synth import write_split

    write_split(tmp_path / "data", "val", 8, seed=5, progress=False)
    generator = generator_hits(generator_engine(prior_model), tmp_path / "data/val")
    assert len(generator) == 8 and set(generator) <= {"0", "1"}
    evaluated = {
        "correct": {"raw": "10000000", "bicubic": "11000000", "sr": "00100000"},
        "heldout_correct": {"raw": "00010000", "bicubic": "00000000", "sr": "00000011"},
    }
    metrics = {"splits": {"val": evaluated}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    out = tmp_path / "out"
    args = ["--metrics", str(tmp_path / "metrics.json"), "--model-dir", str(prior_model), "--data", str(tmp_path / "data"),
            "--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        main([*args[:1], str(tmp_path / "nothing.json"), *args[2:]])
    assert exit_.value.code == 2 and "no such file" in capsys.readouterr().err
    assert main(args) == 0
    result = json.loads((out / "reading_union.json").read_text())
    rows = result["splits"]["val"]["readers"]
    assert [r["reader"] for r in rows] == [GENERATOR] + [f"{r} {f}" for r in ("service", "held-out") for f in ("raw", "bicubic", "sr")]
    assert rows[0]["accuracy"] == generator.count("1") / 8
    every = np.array([list(generator)] + [list(evaluated[k][f]) for k in evaluated for f in ("raw", "bicubic", "sr")]) == "1"
    assert rows[-1]["union"] == every.any(0).mean()
    assert result["splits"]["val"]["target"] == pytest.approx(0.25 + 0.10)
    assert result["average"]["readers"] == rows
    assert "| target: service bicubic + 10 points | 35.00% |" in capsys.readouterr().out

    with pytest.raises(DataError, match="split 'test' of the metrics is not under"):
        reading_union({"splits": {"test": evaluated}}, prior_model, tmp_path / "data")
    with pytest.raises(ModelLoadError, match="has no text prior"):
        reading_union(metrics, plain_model_dir, tmp_path / "data")
