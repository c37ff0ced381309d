"""The synthetic generator is deterministic and writes TextZoom's exact LMDB layout; the loader reads it."""

from __future__ import annotations

import lmdb
import numpy as np
import pytest

from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
from training.data.synth import LEVELS, SPLITS, TRAIN_KINDS, _apply, generate, make_sample


def test_same_seed_same_sample_other_seed_other_sample():
    a, b, c = make_sample(3, "train", 5), make_sample(3, "train", 5), make_sample(4, "train", 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
    hr, lr, label = a
    assert hr.shape == (32, 128, 3) and lr.shape == (16, 64, 3) and hr.dtype == lr.dtype == np.uint8 and label


def test_splits_are_graded_by_degradation():
    assert set(SPLITS) == {"train", "val", "test/easy", "test/medium", "test/hard", "test/unseen"}
    graded = LEVELS[:3]
    for a, b in zip(graded, graded[1:]):
        assert a.blur[0] < b.blur[0] and a.noise[1] < b.noise[1] and a.quality[1] > b.quality[1] and a.down[1] < b.down[1]
    assert all(level.kinds == TRAIN_KINDS for level in graded)


def test_unseen_split_uses_operations_training_never_sees():
    unseen = LEVELS[SPLITS["test/unseen"]]
    assert not set(unseen.kinds) & set(TRAIN_KINDS) and SPLITS["train"] is None and SPLITS["val"] is None
    # every operation of both chains runs and changes the image; the order is drawn per sample
    hr = make_sample(0, "train", 1)[0]
    for level in (LEVELS[1], unseen):
        for kind in level.kinds:
            out = _apply(kind, hr.astype(np.float32), level, np.random.default_rng(0), 1.0)
            assert out.shape != hr.shape if kind.startswith("resize") else np.abs(out - hr).mean() > 0.1, kind
    orders = {tuple(np.random.default_rng([0, 5, i]).permutation(4)) for i in range(20)}
    assert len(orders) > 5


def test_lmdb_layout_and_loader(tmp_path):
    generate(tmp_path, train=5, test=3, seed=1, progress=False, val=2)
    assert [p.relative_to(tmp_path).as_posix() for p in find_lmdbs(tmp_path)] == [
        "test/easy", "test/hard", "test/medium", "test/unseen", "train", "val"
    ]
    env = lmdb.open(str(tmp_path / "train"), readonly=True, lock=False)
    with env.begin() as txn:
        keys = sorted(k.decode() for k, _ in txn.cursor())
        assert txn.get(b"num-samples") == b"5"
        assert txn.get(b"image_hr-000000001")[:8] == b"\x89PNG\r\n\x1a\n"
    env.close()
    assert keys == sorted(["num-samples"] + [f"{kind}-{i:09d}" for i in range(1, 6) for kind in ("image_hr", "image_lr", "label")])
    ds = LMDBDataSetSR(tmp_path / "train")
    lr, hr, label = ds[0]
    assert len(ds) == 5 and lr.shape == (3, 16, 64) and hr.shape == (3, 32, 128) and 0 <= lr.min() and hr.max() <= 1
    assert label == make_sample(1, "train", 1)[2]
    batches = list(ds.batches(2, shuffle=True, seed=0, drop_last=True))
    assert [len(b[2]) for b in batches] == [2, 2]
    assert [b[2] for b in ds.batches(2, shuffle=True, seed=0)] == [b[2] for b in ds.batches(2, shuffle=True, seed=0)]
    with pytest.raises(IndexError):
        ds[5]


def test_loader_refuses_non_textzoom(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data.mdb"):
        LMDBDataSetSR(tmp_path)
    env = lmdb.open(str(tmp_path / "x"))
    with env.begin(write=True) as txn:
        txn.put(b"foo", b"bar")
    env.close()
    with pytest.raises(ValueError, match="num-samples"):
        LMDBDataSetSR(tmp_path / "x")


def test_eval_command_writes_metrics_and_grid(tmp_path, model_dir_any):
    import json

    from textsr.cli import main

    generate(tmp_path / "data", train=0, test=4, seed=2, progress=False)
    assert main(["eval", "--model-dir", str(model_dir_any), "--data", str(tmp_path / "data" / "test"), "--out", str(tmp_path / "ev"), "--grid-rows", "1"]) == 0
    result = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert set(result["splits"]) == {"easy", "medium", "hard", "unseen"}
    for split in result["splits"].values():
        assert split["sr"]["images"] == 4
        for prefix in ("", "heldout_"):  # the service's recognizer and the held-out PP-OCRv4
            assert set(split[prefix + "accuracy"]) == {"raw", "bicubic", "sr", "hr"}
            for source, hits in split[prefix + "correct"].items():  # per-crop record, for paired tests
                assert len(hits) == 4 and set(hits) <= {"0", "1"} and hits.count("1") / 4 == split[prefix + "accuracy"][source]
        for who, prefix in (("service", ""), ("heldout", "heldout_")):
            for other in ("bicubic", "raw"):
                pair, hits = split[f"sr_vs_{other}"][who], split[prefix + "correct"]
                only_sr = sum(a == "1" and b == "0" for a, b in zip(hits["sr"], hits[other]))
                only_other = sum(a == "0" and b == "1" for a, b in zip(hits["sr"], hits[other]))
                assert pair["crops"] == 4 and (pair["only_first"], pair["only_second"]) == (only_sr, only_other) and 0 < pair["p"] <= 1
    avg = result["average"]
    assert avg["accuracy"]["hr"] >= 0.5 and avg["heldout_accuracy"]["hr"] >= 0.5  # both read clean HR crops
    assert avg["sr_vs_bicubic"]["service"]["crops"] == avg["sr_vs_bicubic"]["heldout"]["crops"] == 16
    assert avg["sr_vs_raw"]["service"]["crops"] == 16
    # "raw" is what /v1/recognize?source=raw reads: the service's pipeline reads the LR crops the same way
    from service.local import LocalPipeline
    from service.settings import Settings
    from training.data.lmdb_dataset import LMDBDataSetSR
    from training.evaluate import _to_rgb8, match_label

    with LocalPipeline(Settings(providers="cpu"), model_folder=model_dir_any) as pipeline:
        for name, split in result["splits"].items():
            lr, _, labels = next(LMDBDataSetSR(tmp_path / "data" / "test" / name).batches(4))
            texts = pipeline.read_text(_to_rgb8(lr))
            assert "".join("1" if match_label(t, g) else "0" for (t, _), g in zip(texts, labels)) == split["correct"]["raw"]
    assert (tmp_path / "ev" / "grid.png").stat().st_size > 5000


def test_symbol_fonts_are_not_used(tmp_path):
    """A font that draws "p" as pi or as a dingbat would make an HR crop that does not show its label."""
    import glob
    from pathlib import Path

    from training.data.synth import _draws_latin, font_files

    symbol = [f for f in glob.glob("/usr/share/fonts/**/*.otf", recursive=True) if Path(f).stem in ("StandardSymbolsPS", "D050000L")]
    if not symbol:
        pytest.skip("URW's symbol fonts are not installed (scripts/system-deps.sh installs fonts-urw-base35)")
    assert not set(symbol) & set(font_files())
    assert all(not _draws_latin(f) for f in symbol)
    assert any(Path(f).stem == "NimbusRoman-Regular" for f in font_files())  # URW's Latin fonts stay
