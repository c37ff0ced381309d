"""The models under ``model_dir``: each folder's manifest checked, its graph loaded once.

A model folder that fails its checks stops startup with a message naming the file: a missing
manifest or graph, a sha256 that is not the manifest's, a graph whose input is not the
manifest's, or (for a model with a text prior) a recognizer that is not the one it was
trained on. Normalisation and shapes come from the manifest, never from constants here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from core.manifest import MANIFEST_NAME, Manifest, read_manifest, sha256_file
from service.engine import OrtEngine
from service.errors import ModelLoadError, ModelNotFound
from service.text_prior import TextPriorEngine, prior_recognizer

log = logging.getLogger("textsr.models")


@dataclass
class LoadedModel:
    """A served model: its manifest, the folder it came from and its engine."""

    name: str
    manifest: Manifest
    path: Path
    engine: OrtEngine | TextPriorEngine
    precision: str
    accuracy: dict[str, float] | None = None
    """The service recognizer's accuracy on the model's test set (raw crop, bicubic, SR, HR), from its folder's
    ``metrics.json`` when that file was measured on this folder's fp32 graph; else None."""


def load_model(folder: Path, providers: str, precision: str, intra_op_threads: int) -> LoadedModel:
    """Check one model folder against its manifest and open its graph."""
    try:
        manifest = read_manifest(folder)
    except FileNotFoundError:
        raise ModelLoadError(f"{folder}: no {MANIFEST_NAME}; convert models with `textsr convert`") from None
    except ValueError as exc:
        raise ModelLoadError(f"{folder / MANIFEST_NAME} is invalid: {exc}") from None
    try:
        graph = manifest.graph(precision)
    except KeyError as exc:
        raise ModelLoadError(f"{folder}: {exc.args[0]}") from None
    path = folder / graph.file
    if not path.is_file():
        raise ModelLoadError(f"{path} is missing (listed in {folder / MANIFEST_NAME})")
    actual = sha256_file(path)
    if actual != graph.sha256:
        raise ModelLoadError(
            f"{path}: sha256 mismatch: the file has {actual}, {MANIFEST_NAME} says {graph.sha256}; "
            "the file is corrupt or was swapped"
        )
    engine = OrtEngine(path, providers=providers, intra_op_threads=intra_op_threads)
    want = manifest.input.shape[1:]
    got = engine.input_shape[1:]
    if got != want:
        raise ModelLoadError(f"{path}: graph input {engine.input_shape} does not match the manifest's {manifest.input.shape}")
    if manifest.text_prior is not None:
        _check_prior_inputs(engine, manifest, path)
        engine = _with_text_prior(engine, manifest, folder, providers, intra_op_threads)
    log.info("loaded %s (%s, %s) from %s on %s", manifest.name, manifest.backbone, precision, path, engine.providers)
    return LoadedModel(manifest.name, manifest, folder, engine, precision, measured_accuracy(folder, manifest))


def measured_accuracy(folder: Path, manifest: Manifest) -> dict[str, float] | None:
    """``textsr eval``'s average accuracy of the service recognizer, if ``metrics.json`` names this folder's fp32 graph
    by its sha256 (a stale or foreign file is ignored, with a warning)."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
        measured, accuracy = metrics["model"]["sha256"], metrics["average"]["accuracy"]
    except (ValueError, KeyError, TypeError):
        log.warning("%s: not a `textsr eval` metrics file; its accuracy is not reported", path)
        return None
    if measured != manifest.graph("fp32").sha256:
        log.warning("%s was measured on another graph (sha256 %s); its accuracy is not reported", path, measured)
        return None
    return {k: float(v) for k, v in accuracy.items()}


def _check_prior_inputs(engine: OrtEngine, manifest: Manifest, path: Path) -> None:
    """The service reads and draws the prior at the sizes the manifest names: the graph must take exactly those."""
    graph = {i.name: list(i.shape[1:]) for i in engine.session.get_inputs()}
    for tensor in manifest.text_prior.inputs:
        if graph.get(tensor.name) != list(tensor.shape[1:]):
            raise ModelLoadError(
                f"{path}: the text prior's input {tensor.name!r} is {tensor.shape} in the manifest, but the graph's is "
                f"{graph.get(tensor.name, 'missing')} (after the batch axis)"
            )


def _with_text_prior(engine: OrtEngine, manifest: Manifest, folder: Path, providers: str, intra_op_threads: int) -> TextPriorEngine:
    """Wrap a text-prior model's engine with the recognizer its manifest names (checked by sha256)."""
    spec = manifest.text_prior
    path = prior_recognizer(spec, folder)
    return TextPriorEngine(engine, OrtEngine(path, providers=providers, intra_op_threads=intra_op_threads), spec)


def discover(model_dir: Path) -> list[Path]:
    """Model folders under ``model_dir`` (any folder holding a manifest), sorted by name."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model directory {model_dir} does not exist")
    folders = sorted(p.parent for p in model_dir.glob(f"*/{MANIFEST_NAME}"))
    if (model_dir / MANIFEST_NAME).is_file():
        folders.insert(0, model_dir)
    if not folders:
        raise ModelLoadError(f"no model folders (with {MANIFEST_NAME}) in {model_dir}")
    return folders


class ModelRepository:
    """Name -> :class:`LoadedModel`, plus which one the /v1 endpoints use."""

    def __init__(self, models: list[LoadedModel], default: str | None = None) -> None:
        self.models = {m.name: m for m in models}
        if len(self.models) != len(models):
            raise ModelLoadError(f"two model folders declare the same name: {[m.name for m in models]}")
        if default is not None and default not in self.models:
            raise ModelLoadError(f"default model {default!r} is not among {sorted(self.models)}")
        self.default = default or models[0].name

    @classmethod
    def load(cls, model_dir: Path, providers: str, precision: str, intra_op_threads: int, default: str | None) -> ModelRepository:
        models = [load_model(f, providers, precision, intra_op_threads) for f in discover(model_dir)]
        return cls(models, default)

    def get(self, name: str | None = None) -> LoadedModel:
        key = name or self.default
        if key not in self.models:
            raise ModelNotFound(f"model {key!r} is not loaded; loaded models: {sorted(self.models)}")
        return self.models[key]
