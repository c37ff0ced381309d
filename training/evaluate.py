"""``textsr eval``: PSNR/SSIM (PaddleOCR's way and per image) per split, SR vs bicubic vs HR."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import InputNotFound
from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
from training.metrics import SRMetric, paired
from training.text import filter_label

EVAL_BATCH = 16
"""PaddleOCR's eval batch size; its PSNR is a mean of per-batch values, so the batch size matters."""


def bicubic_upscale(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upscaling of a batch ``[N, 3, h, w]`` in [0, 1] to ``size`` = (H, W)."""
    out = [cv2.resize(x.transpose(1, 2, 0), (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for x in lr]
    return np.clip(np.stack(out).transpose(0, 3, 1, 2), 0, 1)


def split_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if rel != "." else path.name


def _to_rgb8(batch: np.ndarray) -> list[np.ndarray]:
    return [(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0) for x in batch]


class _Reader:
    """Recognition accuracy of one image source: exact match after lower-casing, letters and digits only."""

    def __init__(self, recognizer: Callable[[np.ndarray], list[tuple[str, float]]]) -> None:
        from service.recognizer import prepare

        self.recognizer, self.prepare = recognizer, prepare
        self.hits: list[bool] = []

    def read(self, batch: np.ndarray, labels: list[str]) -> list[str]:
        texts = [t for t, _ in self.recognizer(np.stack([self.prepare(img) for img in _to_rgb8(batch)]))]
        self.hits += [match_label(t, g) for t, g in zip(texts, labels)]
        return texts

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.hits)) if self.hits else float("nan")

    @property
    def correct(self) -> str:
        """Per crop, in data order: "1" read right, "0" not (for paired comparisons between models)."""
        return "".join("1" if h else "0" for h in self.hits)


Recognizer = Callable[[np.ndarray], list[tuple[str, float]]]
SOURCES = ("raw", "bicubic", "sr", "hr")
"""What the recognizers read: the LR crop as sent (what ``/v1/recognize?source=raw`` reads: the recognizer's own resize
from 16 x 64), its bicubic upscaling, the SR and the HR."""
PAIRS = (("sr", "bicubic"), ("sr", "raw"))
"""Paired comparisons on the same crops (exact McNemar): ``sr_vs_bicubic`` (the recognition issue's targets) and
``sr_vs_raw`` (what a caller of ``/v1/recognize`` chooses between)."""


def evaluate_splits(
    upscale: Callable[[np.ndarray], np.ndarray],
    eval_dir: str | Path,
    max_images: int | None = None,
    recognizer: Recognizer | None = None,
    grid_rows: int = 0,
    heldout: Recognizer | None = None,
    prior: Callable[[np.ndarray], list[tuple[str, float]]] | None = None,
) -> dict[str, Any]:
    """Evaluate ``upscale`` (LR batch -> SR batch in [0, 1]) on every LMDB under ``eval_dir``.

    With a ``recognizer`` (the service's), also the recognition accuracy on each of ``SOURCES``
    (``accuracy``, per-crop ``correct``); with ``heldout`` (a recognizer no loss saw) the same under
    ``heldout_accuracy`` / ``heldout_correct``; for each, ``sr_vs_bicubic`` and ``sr_vs_raw`` pair SR with
    bicubic and with the raw crop on the same crops (exact McNemar), per split and pooled over the splits in ``average``. With
    ``grid_rows``, ``result["grid"]`` holds that many examples per split for :func:`save_grid`. With ``prior`` (LR batch ->
    readings: a trained text prior's own reading), ``prior_accuracy`` is how often it reads the LR crop right,
    ``prior_correct`` which crops, and with a ``recognizer`` ``sr_vs_prior`` pairs the service recognizer's reading of
    the SR with the prior's of the LR crop (does the SR pass the prior's reading on?).
    """
    root = Path(eval_dir)
    result: dict[str, Any] = {"splits": {}, "grid": []}
    recognizers = {k: r for k, r in (("", recognizer), ("heldout_", heldout)) if r is not None}
    for lmdb_dir in find_lmdbs(root):
        split = split_name(lmdb_dir, root)
        data = LMDBDataSetSR(lmdb_dir)
        metrics = {"sr": SRMetric(), "bicubic": SRMetric()}
        all_readers = {prefix: {k: _Reader(r) for k in SOURCES} for prefix, r in recognizers.items()}
        seen, prior_hits = 0, []
        for lr, hr, labels in data.batches(EVAL_BATCH):
            if max_images is not None and seen >= max_images:
                break
            views = {"raw": lr, "sr": np.clip(upscale(lr), 0, 1), "bicubic": bicubic_upscale(lr, hr.shape[2:]), "hr": hr}
            metrics["sr"].update(views["sr"], hr)
            metrics["bicubic"].update(views["bicubic"], hr)
            read = {prefix: {k: r.read(views[k], labels) for k, r in group.items()} for prefix, group in all_readers.items()}
            if prior is not None:
                prior_hits += [match_label(t, g) for (t, _), g in zip(prior(lr), labels)]
            texts = read.get("", {})  # the service recognizer's readings go under the grid's images
            for i in range(min(len(lr), grid_rows - sum(1 for g in result["grid"] if g["split"] == split))):
                result["grid"].append({"split": split, "label": labels[i], "lr": lr[i],
                                       **{k: v[i] for k, v in views.items() if k != "raw"},
                                       "texts": {k: t[i] for k, t in texts.items()}})
            seen += len(lr)
        summary = {k: m.summary() for k, m in metrics.items()}
        if prior is not None:
            summary["prior_accuracy"] = float(np.mean(prior_hits))
            summary["prior_correct"] = "".join("1" if hit else "0" for hit in prior_hits)
            if recognizer is not None:
                summary["sr_vs_prior"] = paired(all_readers[""]["sr"].correct, summary["prior_correct"])
        for prefix, group in all_readers.items():
            summary[prefix + "accuracy"] = {k: r.accuracy for k, r in group.items()}
            summary[prefix + "correct"] = {k: r.correct for k, r in group.items()}
        if all_readers:
            for a, b in PAIRS:
                summary[f"{a}_vs_{b}"] = {_who(p): paired(summary[p + "correct"][a], summary[p + "correct"][b]) for p in all_readers}
        result["splits"][split] = summary
    splits = list(result["splits"].values())
    result["average"] = {
        src: {key: float(np.mean([s[src][key] for s in splits])) for key in ("psnr_paddleocr", "psnr_per_image", "ssim")}
        for src in ("sr", "bicubic")
    }
    if prior is not None:
        result["average"]["prior_accuracy"] = float(np.mean([s["prior_accuracy"] for s in splits]))
    for prefix in recognizers:
        result["average"][prefix + "accuracy"] = {k: float(np.mean([s[prefix + "accuracy"][k] for s in splits])) for k in SOURCES}
    if recognizers:
        pooled = {p: {k: "".join(s[p + "correct"][k] for s in splits) for k in SOURCES} for p in recognizers}
        for a, b in PAIRS:
            result["average"][f"{a}_vs_{b}"] = {_who(p): paired(c[a], c[b]) for p, c in pooled.items()}
    return result


def at_least_bicubic(result: dict[str, Any]) -> bool:
    """Whether an evaluation's SR is at least bicubic on PSNR (PaddleOCR's figure) and SSIM, averaged over its splits."""
    avg = (result or {}).get("average", {})
    return bool(avg) and all(avg["sr"][k] >= avg["bicubic"][k] for k in ("psnr_paddleocr", "ssim"))


def _who(prefix: str) -> str:
    return prefix.rstrip("_") or "service"


def save_grid(rows: list[dict[str, Any]], path: str | Path, scale: int = 2) -> Path:
    """PNG grid: LR | bicubic | SR | HR per row, with the split, label and recognized text under each (the LR's after
    its label)."""
    from service.images import grid

    green, red = (0, 120, 0), (200, 0, 0)
    table = []
    for row in rows:
        raw = row["texts"].get("raw")  # the LR crop's own reading, after the label
        first = f"{row['split']}: {row['label']}" + (f" | {raw}" if raw is not None else "")
        cells = [(_to_rgb8(row["lr"][None])[0], first, green if raw is None or match_label(raw, row["label"]) else red)]
        for name in ("bicubic", "sr", "hr"):
            text = row["texts"].get(name, "")
            cells.append((_to_rgb8(row[name][None])[0], text, green if match_label(text, row["label"]) else red))
        table.append(cells)
    picture = grid(table, ["LR", "BICUBIC", "SR", "HR"], (32 * scale, 128 * scale))
    cv2.imwrite(str(path), picture[..., ::-1])
    return Path(path)


def match_label(text: str, label: str) -> bool:
    return filter_label(text) == filter_label(label)


@contextmanager
def onnx_upscaler(model_dir: str | Path) -> Iterator[Callable[[np.ndarray], np.ndarray]]:
    """LR batch -> SR batch through a converted model folder, on the service's own pipeline (CPU).

    The batch goes through the same code the v2 infer endpoint runs (``Pipeline.infer``: limits,
    dynamic batcher, engine), without HTTP; the manifest is checked when the folder loads.
    """
    from service.local import LocalPipeline
    from service.settings import Settings

    with LocalPipeline(Settings(providers="cpu", recognition=False), model_folder=Path(model_dir)) as pipeline:
        yield pipeline.infer


def default_recognizer() -> Recognizer:
    """The service's recognizer (PP-OCRv6 small from the rapidocr wheel) on the CPU."""
    from service.engine import OrtEngine
    from service.recognizer import TextRecognizer, default_model_path

    return TextRecognizer(OrtEngine(default_model_path(), providers="cpu"))


class Memoized:
    """A recognizer that reads each distinct prepared image once, then answers from memory.

    The trainer's periodic evaluation shows the same bicubic and HR crops every time: two thirds of its
    recognition work. ``max_entries`` bounds the memory (oldest readings are forgotten first).
    """

    def __init__(self, recognizer: Recognizer, max_entries: int = 200_000) -> None:
        self.recognizer, self.max_entries = recognizer, max_entries
        self.memo: dict[bytes, tuple[str, float]] = {}

    def __call__(self, batch: np.ndarray) -> list[tuple[str, float]]:
        import hashlib

        keys = [hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=16).digest() for x in batch]
        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # each distinct image's first place in the batch
        todo = sorted(i for k, i in first.items() if k not in self.memo)
        if todo:
            self.memo.update(zip([keys[i] for i in todo], self.recognizer(batch[todo])))
        answers = [self.memo[k] for k in keys]
        while len(self.memo) > self.max_entries:  # dicts keep insertion order: the oldest reading goes first
            del self.memo[next(iter(self.memo))]
        return answers


HELDOUT_PACKAGE, HELDOUT_FILE = "rapidocr_onnxruntime", "models/ch_PP-OCRv4_rec_infer.onnx"
"""The held-out recognizer: PP-OCRv4 rec (6,625 classes, character list in its metadata), shipped in the
rapidocr-onnxruntime 1.4.4 wheel, which ``make install-all`` installs without its dependencies (its
``onnxruntime`` requirement would replace onnxruntime-gpu). No training loss reads it."""


def heldout_recognizer() -> Recognizer:
    """PP-OCRv4 rec on the CPU, read through the service's preprocessing and CTC decoding."""
    import importlib.util

    from service.engine import OrtEngine
    from service.recognizer import TextRecognizer

    spec = importlib.util.find_spec(HELDOUT_PACKAGE)
    path = Path(list(spec.submodule_search_locations)[0]) / HELDOUT_FILE if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise InputNotFound(
            f"the held-out recognizer {HELDOUT_FILE} of {HELDOUT_PACKAGE} is not installed "
            "(pip install --no-deps rapidocr-onnxruntime==1.4.4, as make install-all does)"
        )
    return TextRecognizer(OrtEngine(path, providers="cpu"))


def run_eval(
    model_dir: str | Path, data_dir: str | Path, out_dir: str | Path, max_images: int | None = None, grid_rows: int = 4,
    heldout: bool = True,
) -> dict[str, Any]:
    """``textsr eval``: metrics.json and grid.png for a converted model on a TextZoom-layout dataset."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with onnx_upscaler(model_dir) as upscale:
        result = evaluate_splits(
            upscale, data_dir, max_images, default_recognizer(), grid_rows, heldout_recognizer() if heldout else None
        )
    save_grid(result.pop("grid"), out / "grid.png")
    result["model"] = _graph_identity(Path(model_dir))
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def _graph_identity(model_dir: Path) -> dict[str, str]:
    """Which graph the figures belong to: the manifest's name and the fp32 graph's sha256 (as served)."""
    from core.manifest import read_manifest

    m = read_manifest(model_dir)
    graph = next(g for g in m.graphs if g.precision == "fp32")
    return {"name": m.name, "file": graph.file, "sha256": graph.sha256}


def evaluate_sr(
    model: Any, eval_dir: str | Path, max_images: int | None = None,
    recognizer: Recognizer | None = None,
) -> dict[str, Any]:
    """Evaluate a Paddle network (eval mode) on every split under ``eval_dir`` (with a recognizer: accuracy too)."""
    import paddle

    trained_prior = getattr(model, "prior_trainable", False)
    last: dict[str, Any] = {}  # a trained prior: the batch's prior, computed once for the SR and for its own reading

    def upscale(lr: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            x = paddle.to_tensor(lr)
            if not trained_prior:
                return model(x).numpy()
            last["lr"], last["prior"] = lr, model.prior.probabilities(x)
            return model(x, last["prior"]).numpy()

    def read_prior(lr: np.ndarray) -> list[tuple[str, float]]:
        if last.get("lr") is not lr:  # evaluate_splits reads the prior of the batch it has just upscaled
            return model.prior.read(paddle.to_tensor(lr))
        return model.prior.decode(last["prior"].numpy())

    return evaluate_splits(upscale, eval_dir, max_images, recognizer, prior=read_prior if trained_prior else None)
