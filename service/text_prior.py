"""A model with a text prior: the service recognizer reads the LR batch, and its reading is the graph's second input.

``TextPriorEngine(sr, recognizer, spec)(lr) -> sr`` has the plain engine's call, so batching, KServe and the HTTP layer
serve such a model unchanged. The recognizer sees each LR crop the way training's
:class:`training.networks.text_prior.TextPrior` does (``service.recognizer.prepare``'s steps on a float batch); what is
kept of its probabilities is the manifest's (:class:`core.manifest.TextPriorSpec`); a test holds the two equal. A model
trained with ``prior_glyphs`` also takes that reading drawn as text (:func:`glyph_image`, the one drawing training uses),
at the size its manifest names (``TextPriorSpec.glyphs``: the LR's, or the SR's for ``prior_glyph_tail``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from core.errors import InputNotFound
from core.manifest import TextPriorSpec, sha256_file
from core.spec import PRIOR_CHARSET
from service.engine import OrtEngine
from service.errors import ModelLoadError
from service.recognizer import characters, default_model_path, prepare


def prior_recognizer(spec: TextPriorSpec, folder: Path) -> Path:
    """The recognizer file that computes the prior of the model in ``folder``: its own fine-tuned one (``bundled``) or
    the installed service recognizer; :class:`ModelLoadError` when it is missing or not the one trained with (sha256)."""
    if spec.bundled:
        path = Path(folder) / spec.recognizer
        if not path.is_file():
            raise ModelLoadError(f"{folder}: the model's text prior needs its recognizer {spec.recognizer}, which is missing")
        if sha256_file(path) != spec.recognizer_sha256:
            raise ModelLoadError(f"{path}: sha256 {sha256_file(path)} is not the manifest's {spec.recognizer_sha256}")
        return path
    try:
        path = default_model_path()
    except InputNotFound as exc:
        raise ModelLoadError(f"{folder}: the model's text prior needs the recognizer {spec.recognizer}: {exc}") from None
    if path.name != spec.recognizer or sha256_file(path) != spec.recognizer_sha256:
        raise ModelLoadError(
            f"{folder}: the model's text prior was trained on {spec.recognizer} (sha256 {spec.recognizer_sha256}); "
            f"the installed recognizer is {path} with sha256 {sha256_file(path)}"
        )
    return path


def recognizer_input(lr: np.ndarray) -> np.ndarray:
    """``[N, 3, h, w]`` float RGB in [0, 1] -> ``[N, 3, 48, 320]``: :func:`prepare` on each crop, in float."""
    return np.stack([prepare(crop.transpose(1, 2, 0) * 255.0) for crop in np.clip(lr, 0.0, 1.0).astype(np.float32)])


def prior_of(probabilities: np.ndarray, columns: np.ndarray, steps: int) -> np.ndarray:
    """``[N, T, C]`` recognizer probabilities -> ``[N, len(columns) + 1, steps]``: the kept classes, then the rest."""
    picked = probabilities[:, :steps][..., columns]
    rest = np.clip(1.0 - picked.sum(-1, keepdims=True), 0.0, None)
    return np.ascontiguousarray(np.concatenate([picked, rest], -1).transpose(0, 2, 1), np.float32)


GLYPH_SUPERSAMPLE = 4
"""Glyphs are drawn this many times larger and area-resampled to the crop: anti-aliased strokes."""


def character_runs(best: np.ndarray, charset: str = PRIOR_CHARSET) -> list[tuple[str, int, int]]:
    """Greedy CTC over one crop's most likely class per column (0 = blank, ``1 + i`` = ``charset[i]``, anything above
    = the "rest" class): each run of equal columns that is a character, as ``(character, first column, last + 1)``;
    blanks and "rest" read as nothing."""
    runs, start = [], 0
    for t in range(1, len(best) + 1):
        if t == len(best) or best[t] != best[start]:
            k = int(best[start])
            if 0 < k <= len(charset):
                runs.append((charset[k - 1], start, t))
            start = t
    return runs


def glyph_image(probs: np.ndarray, height: int, width: int, charset: str = PRIOR_CHARSET) -> np.ndarray:
    """A prior ``[N, K, T]`` drawn as text: ``[N, 1, height, width]`` float32 in [0, 1], 1 = ink. Each run of columns
    whose most likely class is the same character (:func:`character_runs`) becomes that character (OpenCV's Hershey
    simplex font, about 70% of the crop's height, vertically centred), centred on the run's middle column (column ``t``
    covers ``[t, t + 1) * width / T``) and squeezed, where its neighbours are close, into its slot (from midway to
    the previous character's centre to midway to the next's), so that glyphs never overlap; blanks and the "rest"
    class draw nothing."""
    n, _, steps = probs.shape
    big_h, big_w = height * GLYPH_SUPERSAMPLE, width * GLYPH_SUPERSAMPLE
    font = cv2.FONT_HERSHEY_SIMPLEX
    (_, cap), descent = cv2.getTextSize("A", font, 1.0, 1)
    scale = 0.7 * big_h / (cap + descent)
    thickness = max(1, round(2 * scale))
    out = np.zeros((n, 1, height, width), np.float32)
    for i, best in enumerate(probs.argmax(1)):
        canvas = np.zeros((big_h, big_w), np.uint8)
        runs = character_runs(best, charset)
        centres = [(start + stop) / 2 * big_w / steps for _, start, stop in runs]
        for j, (char, _, _) in enumerate(runs):
            glyph = _glyph(char, big_h, scale, thickness)
            gaps = [centres[j] - centres[j - 1] if j else np.inf, centres[j + 1] - centres[j] if j + 1 < len(runs) else np.inf]
            fit = max(1, int(min(glyph.shape[1], 0.9 * min(gaps))))  # the slot's width, 10% left as a gap
            if fit < glyph.shape[1]:
                glyph = cv2.resize(glyph, (fit, big_h), interpolation=cv2.INTER_AREA)
            left = round(centres[j] - glyph.shape[1] / 2)
            lo, hi = max(0, left), min(big_w, left + glyph.shape[1])
            if hi > lo:
                np.maximum(canvas[:, lo:hi], glyph[:, lo - left : hi - left], out=canvas[:, lo:hi])
        out[i, 0] = cv2.resize(canvas, (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return out


@functools.lru_cache(maxsize=1024)
def _glyph(char: str, height: int, scale: float, thickness: int) -> np.ndarray:
    """One character drawn alone, ``[height, its advance width]`` uint8, baseline placed as :func:`glyph_image` says
    (read-only: cached)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), _ = cv2.getTextSize(char, font, scale, thickness)
    canvas = np.zeros((height, w + thickness), np.uint8)
    cv2.putText(canvas, char, (thickness // 2, round((height + h) / 2)), font, scale, 255, thickness, cv2.LINE_AA)
    canvas.flags.writeable = False
    return canvas


class TextPriorEngine:
    """``engine(lr [N, 3, h, w]) -> sr``: the recognizer's reading of ``lr`` (``spec``), then the SR graph on both (and,
    for a model with ``spec.glyphs``, on that reading drawn)."""

    def __init__(self, sr: OrtEngine, recognizer: OrtEngine, spec: TextPriorSpec) -> None:
        classes = characters(recognizer.session.get_modelmeta().custom_metadata_map)
        missing = [c for c in spec.characters if c not in classes]
        if missing:
            raise ModelLoadError(f"the text prior needs characters the recognizer lacks: {missing}")
        self.columns = np.asarray([0] + [classes.index(c) for c in spec.characters])
        self.steps, self.prior_name = spec.input.shape[2], spec.input.name
        self.glyphs_name = spec.glyphs.name if spec.glyphs is not None else None
        self.glyphs_size = tuple(spec.glyphs.shape[2:]) if spec.glyphs is not None else None  # the LR's, or the SR's
        self.charset = spec.characters
        self.sr, self.recognizer = sr, recognizer
        # what the rest of the service reads of an engine: the SR graph's
        self.session, self.input_shape, self.providers, self.device = sr.session, sr.input_shape, sr.providers, sr.device

    def prior(self, lr: np.ndarray) -> np.ndarray:
        """The graph's second input for ``lr``."""
        return prior_of(self.recognizer(recognizer_input(lr)), self.columns, self.steps)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        prior = self.prior(lr)
        feeds = {self.prior_name: prior}
        if self.glyphs_name is not None:
            feeds[self.glyphs_name] = glyph_image(prior, *self.glyphs_size, self.charset)
        return self.sr(lr, feeds)
