"""Scene-text recognition with PP-OCRv6 small, the ONNX model that the ``rapidocr`` wheel ships.

Model: ``rapidocr/models/PP-OCRv6_rec_small.onnx`` (rapidocr 3.10.0, Apache-2.0; PaddleOCR's
PP-OCRv6 recognition model, Apache-2.0). Nothing is downloaded: the file is read from the installed
package. Input [N, 3, 48, W] BGR normalised to [-1, 1]; output per-timestep class probabilities;
the character list is the model's own ``character`` metadata (blank first, space last). We batch
crops at a fixed 48x320 canvas (RapidOCR's default shape), aspect kept, padded right.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import DataError, InputNotFound

MODEL_FILE = "PP-OCRv6_rec_small.onnx"
HEIGHT, WIDTH = 48, 320
ITEM_SHAPE = (3, HEIGHT, WIDTH)
LICENSE = "Apache-2.0 (PaddleOCR PP-OCRv6 model, distributed in the rapidocr wheel)"


def default_model_path() -> Path:
    """Where the installed rapidocr package keeps the recognition model."""
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or not spec.submodule_search_locations:
        raise InputNotFound("the rapidocr package is not installed (pip install 'textsr[serve]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / MODEL_FILE
    if not path.is_file():
        raise InputNotFound(f"{path} not found in the installed rapidocr package")
    return path


MEAN, STD = 0.5, 0.5
"""Normalisation of [0, 1] pixels: (x - MEAN) / STD, so the model sees [-1, 1]."""


def target_width(height: int, width: int) -> int:
    """Width of a ``height`` x ``width`` crop resized to the model's height, aspect kept, at most WIDTH."""
    return min(WIDTH, max(1, int(np.ceil(HEIGHT * width / height))))


def prepare(rgb: np.ndarray) -> np.ndarray:
    """RGB crop (uint8, or float in [0, 255]) -> [3, 48, 320] float32: aspect-kept resize to height 48 (bilinear), BGR,
    [-1, 1], right padding.

    Training's differentiable copy (``training.networks.service_recognizer``) follows these same steps
    and constants; a test holds the two equal.
    """
    h, w = rgb.shape[:2]
    width = target_width(h, w)
    img = cv2.resize(rgb[..., ::-1], (width, HEIGHT), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    out = np.zeros(ITEM_SHAPE, np.float32)
    out[:, :, :width] = (img / 255.0 - MEAN).transpose(2, 0, 1) / STD
    return out


def characters(metadata: dict[str, str]) -> list[str]:
    """The class list of a PaddleOCR CTC model from its ``character`` metadata: blank first, space last."""
    if "character" not in metadata:
        raise DataError("recognition model has no 'character' metadata")
    return ["<blank>", *metadata["character"].splitlines(), " "]


class TextRecognizer:
    """``recognizer(batch [N, 3, 48, 320]) -> [(text, confidence), ...]`` with greedy CTC decoding."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.characters = characters(engine.session.get_modelmeta().custom_metadata_map)
        classes = engine.session.get_outputs()[0].shape[-1]
        if isinstance(classes, int) and classes != len(self.characters):
            raise DataError(f"character list has {len(self.characters)} entries, the model outputs {classes} classes")

    def __call__(self, batch: np.ndarray) -> list[tuple[str, float]]:
        return ctc_greedy(self.engine(batch), self.characters)


def ctc_greedy(probs: np.ndarray, classes: list[str]) -> list[tuple[str, float]]:
    """Greedy CTC decoding of ``[N, T, C]`` probabilities: (text, mean confidence of the kept steps) per item."""
    best = probs.argmax(-1)
    conf = probs.max(-1)
    results = []
    for idx, p in zip(best, conf):
        keep = np.ones(len(idx), bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != 0
        text = "".join(classes[i] for i in idx[keep])
        results.append((text.strip(), float(p[keep].mean()) if keep.any() else 0.0))
    return results
