"""``textsr eval``: PSNR/SSIM (PaddleOCR's way and per image) per split, SR vs bicubic vs HR."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.data.lmdb_dataset import LMDBDataSetSR, find_lmdbs
from training.metrics import SRMetric

EVAL_BATCH = 16
"""PaddleOCR's eval batch size; its PSNR is a mean of per-batch values, so the batch size matters."""


def bicubic_upscale(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bicubic upscaling of a batch ``[N, 3, h, w]`` in [0, 1] to ``size`` = (H, W)."""
    out = [cv2.resize(x.transpose(1, 2, 0), (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for x in lr]
    return np.clip(np.stack(out).transpose(0, 3, 1, 2), 0, 1)


def _split_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).as_posix()
    return rel if rel != "." else path.name


def evaluate_splits(
    upscale: Callable[[np.ndarray], np.ndarray], eval_dir: str | Path, max_images: int | None = None
) -> dict[str, Any]:
    """Evaluate ``upscale`` (LR batch -> SR batch in [0, 1]) on every LMDB under ``eval_dir``."""
    root = Path(eval_dir)
    result: dict[str, Any] = {"splits": {}}
    for lmdb_dir in find_lmdbs(root):
        data = LMDBDataSetSR(lmdb_dir)
        metrics = {"sr": SRMetric(), "bicubic": SRMetric()}
        seen = 0
        for lr, hr, _ in data.batches(EVAL_BATCH):
            if max_images is not None and seen >= max_images:
                break
            metrics["sr"].update(np.clip(upscale(lr), 0, 1), hr)
            metrics["bicubic"].update(bicubic_upscale(lr, hr.shape[2:]), hr)
            seen += len(lr)
        result["splits"][_split_name(lmdb_dir, root)] = {k: m.summary() for k, m in metrics.items()}
    splits = list(result["splits"].values())
    result["average"] = {
        src: {key: float(np.mean([s[src][key] for s in splits])) for key in ("psnr_paddleocr", "psnr_per_image", "ssim")}
        for src in ("sr", "bicubic")
    }
    return result


def evaluate_sr(model: Any, eval_dir: str | Path, max_images: int | None = None) -> dict[str, Any]:
    """Evaluate a Paddle network (eval mode) on every split under ``eval_dir``."""
    import paddle

    def upscale(lr: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return model(paddle.to_tensor(lr)).numpy()

    return evaluate_splits(upscale, eval_dir, max_images)
