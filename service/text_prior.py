"""A model with a text prior: the service recognizer reads the LR batch, and its reading is the graph's second input.

``TextPriorEngine(sr, recognizer, spec)(lr) -> sr`` has the plain engine's call, so batching, KServe and the HTTP layer
serve such a model unchanged. The recognizer sees each LR crop the way training's
:class:`training.networks.text_prior.TextPrior` does (``service.recognizer.prepare``'s steps on a float batch); what is
kept of its probabilities is the manifest's (:class:`core.manifest.TextPriorSpec`); a test holds the two equal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import InputNotFound
from core.manifest import TextPriorSpec, sha256_file
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


class TextPriorEngine:
    """``engine(lr [N, 3, h, w]) -> sr``: the recognizer's reading of ``lr`` (``spec``), then the SR graph on both."""

    def __init__(self, sr: OrtEngine, recognizer: OrtEngine, spec: TextPriorSpec) -> None:
        classes = characters(recognizer.session.get_modelmeta().custom_metadata_map)
        missing = [c for c in spec.characters if c not in classes]
        if missing:
            raise ModelLoadError(f"the text prior needs characters the recognizer lacks: {missing}")
        self.columns = np.asarray([0] + [classes.index(c) for c in spec.characters])
        self.steps, self.prior_name = spec.input.shape[2], spec.input.name
        self.sr, self.recognizer = sr, recognizer
        # what the rest of the service reads of an engine: the SR graph's
        self.session, self.input_shape, self.providers, self.device = sr.session, sr.input_shape, sr.providers, sr.device

    def prior(self, lr: np.ndarray) -> np.ndarray:
        """The graph's second input for ``lr``."""
        return prior_of(self.recognizer(recognizer_input(lr)), self.columns, self.steps)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        return self.sr(lr, {self.prior_name: self.prior(lr)})
