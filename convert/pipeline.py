"""``textsr convert``: Paddle model -> ``model.onnx`` (+ fp16) -> verified -> ``manifest.json``."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from convert import graph
from convert.errors import ConversionError
from convert.sources import Source, from_checkpoint, from_inference_dir
from convert.verify import FP16_TOLERANCE, FP32_TOLERANCE, reference_outputs, verify
from core.manifest import GraphFile, Manifest, TensorSpec, TextPriorSpec, sha256_file, write_manifest
from core.spec import CHANNELS, INPUT_NAME, OUTPUT_NAME, PRIOR_GENERATOR_FILE

MIN_OPSET = 13
ONNX_NAME = "model.onnx"
FP16_NAME = "model.fp16.onnx"


class _Steps:
    """Prints numbered steps with their duration: the converter's progress display."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.total, self.log, self.n, self.t0 = total, log, 0, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.n += 1
        self.log(f"[{self.n}/{self.total}] {text} (t={time.perf_counter() - self.t0:.1f}s)")


def _ort_runner(path: Path, prior: TextPriorSpec | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """ONNX Runtime on ``path`` as the service runs it: for a text-prior model, with the prior's recognizer (the
    service's, or the model's own beside ``path``) in front (so verification covers the prior the service computes,
    not only the graph)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types
        raise ConversionError(f"ONNX Runtime cannot load {path.name}: {exc}") from None
    if prior is None:
        return lambda x: session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
    from service.engine import OrtEngine
    from service.errors import ModelLoadError
    from service.text_prior import TextPriorEngine, prior_recognizer

    try:
        recognizer = prior_recognizer(prior, path.parent)
    except ModelLoadError as exc:
        raise ConversionError(str(exc)) from None
    return TextPriorEngine(OrtEngine(session=session), OrtEngine(recognizer, providers="cpu"), prior)


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import paddle
    import paddle2onnx

    import core

    return {
        "textsr": core.__version__,
        "paddle": paddle.__version__,
        "paddle2onnx": paddle2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def convert(
    output_dir: str | Path,
    *,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    checkpoint: str | Path | None = None,
    inference_dir: str | Path | None = None,
    algorithm: str | None = None,
    name: str | None = None,
    opset: int = 17,
    fp16: bool = False,
    simplify: bool = False,
    log: Callable[[str], None] = print,
) -> Manifest:
    """Convert a Paddle model to a verified ONNX model folder and return its manifest.

    Give either ``config`` and ``checkpoint`` (a PaddleOCR YAML and ``.pdparams``) or
    ``inference_dir`` (what ``tools/export_model.py`` writes). ``algorithm`` names the algorithm
    of an inference model when no ``inference.yml`` says it. ``overrides`` (``Section.key=value``) change the config.
    """
    if (inference_dir is None) == (checkpoint is None and config is None):
        raise ConversionError("give either --config with --checkpoint, or --inference-dir (not both)")
    if inference_dir is None and (config is None or checkpoint is None):
        raise ConversionError("--config and --checkpoint go together")
    if overrides and config is None:
        raise ConversionError("config overrides (-o) need --config")
    if opset < MIN_OPSET:
        raise ConversionError(f"--opset must be >= {MIN_OPSET}, got {opset}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    step = _Steps(6 + simplify + fp16, log)

    with tempfile.TemporaryDirectory(prefix="textsr-convert-") as tmp:
        work = Path(tmp)
        if inference_dir is not None:
            step(f"reading Paddle inference model {inference_dir}")
            source: Source = from_inference_dir(inference_dir, algorithm)
        else:
            step(f"building network from {config} and loading {checkpoint} strictly")
            source = from_checkpoint(config, checkpoint, work, overrides or [])
        step(f"paddle2onnx (opset {opset}) on {source.model_file.name}")
        raw = graph.paddle_to_onnx(source.model_file, source.params_file, work / "raw.onnx", opset)
        step("setting I/O contract: lr -> sr, clip to [0, 1], dynamic batch, metadata")
        model_name = name or f"{source.algorithm.lower()}-{source.backbone.lower()}"
        meta = {"name": model_name, "algorithm": source.algorithm, "backbone": source.backbone, "value_range": "0,1"}
        prior = source.text_prior
        if source.prior_generator is not None:  # the model's own prior recognizer ships beside its graph
            shutil.copyfile(source.prior_generator, out / PRIOR_GENERATOR_FILE)
        else:
            (out / PRIOR_GENERATOR_FILE).unlink(missing_ok=True)
        onnx_path, scale = graph.finalize(raw, out / ONNX_NAME, source.lr_size, meta, prior.inputs if prior else [])
        if simplify:
            step("simplifying the graph with onnxslim")
            graph.simplify(onnx_path)
        step(f"verifying ONNX Runtime against {source.reference_name} (tolerance {FP32_TOLERANCE:g})")
        expected = reference_outputs(source.reference, source.lr_size)
        check = verify(expected, _ort_runner(onnx_path, prior), FP32_TOLERANCE, source.reference_name)
        log(f"      max |diff| = {check.max_abs_diff:.3g}")
        graphs = [GraphFile(file=ONNX_NAME, sha256=sha256_file(onnx_path), precision="fp32", verification=check)]
        if fp16:
            step("writing and verifying the fp16 graph")
            half = graph.to_fp16(onnx_path, out / FP16_NAME)
            check16 = verify(expected, _ort_runner(half, prior), FP16_TOLERANCE, source.reference_name)
            log(f"      fp16 max |diff| = {check16.max_abs_diff:.3g}")
            graphs.append(GraphFile(file=FP16_NAME, sha256=sha256_file(half), precision="fp16", verification=check16))
        else:
            (out / FP16_NAME).unlink(missing_ok=True)
        step("writing manifest.json")
        h, w = source.lr_size
        manifest = Manifest(
            name=model_name,
            algorithm=source.algorithm,
            backbone=source.backbone,
            input=TensorSpec(name=INPUT_NAME, shape=[-1, CHANNELS, h, w]),
            output=TensorSpec(name=OUTPUT_NAME, shape=[-1, CHANNELS, h * scale, w * scale]),
            scale=scale,
            opset=graph.opset_of(onnx_path),
            graphs=graphs,
            source=source.provenance,
            versions=_versions(),
            created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            text_prior=prior,
        )
        path = write_manifest(out, manifest)
        step(f"done: {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB), {path}")
    return manifest
