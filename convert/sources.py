"""The two kinds of Paddle model the converter accepts, as one :class:`Source`.

(a) a PaddleOCR YAML config plus a ``.pdparams`` training checkpoint: we rebuild the network
    (export-clean: no STN, no recognizer), load the weights strictly and ``jit.save`` it;
(b) an inference model directory as PaddleOCR's ``tools/export_model.py`` writes it: Paddle 3
    (``inference.json`` + ``inference.pdiparams``) or Paddle 2 (``inference.pdmodel`` + ``.pdiparams``).
Either way a Source yields the files paddle2onnx reads and a Paddle reference to verify against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ConfigError, DataError, InputNotFound
from core.manifest import TensorSpec, TextPriorSpec, sha256_file
from core.spec import (
    CHANNELS,
    GLYPHS_NAME,
    INPUT_NAME,
    LR_HEIGHT,
    LR_WIDTH,
    PRIOR_CHARSET,
    PRIOR_GENERATOR_FILE,
    PRIOR_NAME,
)

MODEL_SUFFIXES = (".json", ".pdmodel")


@dataclass
class Source:
    """A Paddle model ready for paddle2onnx, with a function that runs it in Paddle.

    The scale is not recorded here: the converter measures it from the exported graph's output shape.
    """

    kind: str
    algorithm: str
    backbone: str
    lr_size: tuple[int, int]
    model_file: Path
    params_file: Path
    reference: Callable[[np.ndarray], np.ndarray]
    reference_name: str
    provenance: dict[str, str] = field(default_factory=dict)
    text_prior: TextPriorSpec | None = None
    """Set for a network with a text prior: the graph's second input (the reference computes it itself)."""
    prior_generator: Path | None = None
    """For a network whose prior's recognizer was fine-tuned with it: that recognizer as ONNX, to ship beside the graph."""


def from_checkpoint(config: str | Path, checkpoint: str | Path, workdir: Path, overrides: list[str] = ()) -> Source:
    """Build the network named by ``config`` (with ``Section.key=value`` ``overrides``), load ``checkpoint`` strictly
    and save it for export."""
    import paddle

    from training.config import architecture, load_config
    from training.networks import build_network, load_checkpoint

    spec = architecture(load_config(config, list(overrides)))
    if not Path(checkpoint).is_file():
        raise InputNotFound(f"checkpoint not found: {checkpoint}")
    net = build_network(spec.backbone, **spec.kwargs)
    load_checkpoint(net, checkpoint)
    net.eval()
    prefix = workdir / "inference"
    input_spec = [paddle.static.InputSpec([None, CHANNELS, *spec.lr_size], "float32", INPUT_NAME)]
    generator = net.prior.generator.graph.export(workdir / PRIOR_GENERATOR_FILE) if spec.kwargs.get("prior_trainable") else None
    prior = _text_prior(net, spec.lr_size, generator) if spec.kwargs.get("text_prior") else None
    if prior is not None:  # the recognizer's reading is the graph's second input; the service computes it
        input_spec.append(paddle.static.InputSpec([None, *prior.input.shape[1:]], "float32", PRIOR_NAME))
    if prior is not None and prior.glyphs is not None:  # and that reading drawn, its third (the service draws it)
        input_spec.append(paddle.static.InputSpec([None, *prior.glyphs.shape[1:]], "float32", GLYPHS_NAME))
    paddle.jit.save(paddle.jit.to_static(net, input_spec=input_spec, full_graph=True), str(prefix))

    def reference(x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            lr = paddle.to_tensor(x)
            if prior is None:
                return net(lr).numpy()
            # a prior network's reference reads the crop with training's recognizer (Paddle), the service's with ONNX Runtime;
            # one with glyphs draws that reading (the service draws its own reading with the same function)
            probs = net.prior.probabilities(lr)
            if prior.glyphs is None:
                return net(lr, probs).numpy()
            return net(lr, probs, net.prior.draw(probs, *spec.lr_size)).numpy()

    return Source(
        kind="paddleocr-checkpoint",
        algorithm=spec.algorithm,
        backbone=spec.backbone,
        lr_size=spec.lr_size,
        model_file=prefix.with_suffix(".json"),
        params_file=prefix.with_suffix(".pdiparams"),
        reference=reference,
        reference_name=f"Paddle {paddle.__version__} dygraph (eval mode)",
        provenance={
            "kind": "paddleocr-checkpoint",
            "config": Path(config).name,
            "checkpoint": Path(checkpoint).name,
            "checkpoint_sha256": sha256_file(checkpoint),
            **({"overrides": " ".join(overrides)} if overrides else {}),
        },
        text_prior=prior,
        prior_generator=generator,
    )


def _text_prior(net, lr_size: tuple[int, int], generator: Path | None = None) -> TextPriorSpec:
    """The second input of ``net`` (built with ``text_prior``): its shape, and the recognizer that computes it (the
    service's, or ``generator``: the network's fine-tuned copy, exported); with ``prior_glyphs`` the third."""
    import paddle

    with paddle.no_grad():
        shape = net.prior.probabilities(paddle.zeros([1, CHANNELS, *lr_size])).shape
    path = generator or net.prior.recognizer[0].path
    return TextPriorSpec(
        input=TensorSpec(name=PRIOR_NAME, shape=[-1, int(shape[1]), int(shape[2])]),
        recognizer=path.name, recognizer_sha256=sha256_file(path), characters=PRIOR_CHARSET,
        bundled=True if generator else None,
        glyphs=TensorSpec(name=GLYPHS_NAME, shape=[-1, 1, *net.prior.glyph_size(*lr_size)]) if net.prior.glyphs else None,
    )


def find_inference_files(model_dir: str | Path) -> tuple[Path, Path]:
    """Locate the program and parameter files of an exported inference model."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputNotFound(f"inference model directory not found: {model_dir}")
    for suffix in MODEL_SUFFIXES:
        programs = sorted(p for p in model_dir.glob(f"*{suffix}") if p.with_suffix(".pdiparams").is_file())
        if programs:
            return programs[0], programs[0].with_suffix(".pdiparams")
    raise InputNotFound(
        f"{model_dir} holds no Paddle inference model: expected inference.json or inference.pdmodel "
        "next to inference.pdiparams (as tools/export_model.py writes)"
    )


def _read_inference_yml(model_dir: Path) -> dict:
    path = model_dir / "inference.yml"
    if not path.is_file():
        return {}
    import yaml

    return yaml.safe_load(path.read_text()) or {}


def from_inference_dir(model_dir: str | Path, algorithm: str | None = None) -> Source:
    """Wrap an exported inference model; Paddle Inference is the reference."""
    from paddle import inference

    from training.config import ALGORITHMS

    model_dir = Path(model_dir)
    model_file, params_file = find_inference_files(model_dir)
    meta = _read_inference_yml(model_dir)
    algorithm = algorithm or (meta.get("Global") or {}).get("algorithm") or "unknown"
    if algorithm != "unknown" and algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algorithm!r}; supported: {sorted(ALGORITHMS)}")
    cfg = inference.Config(str(model_file), str(params_file))
    cfg.disable_gpu()
    cfg.switch_ir_optim(True)
    cfg.disable_glog_info()
    predictor = inference.create_predictor(cfg)
    in_handle = predictor.get_input_handle(predictor.get_input_names()[0])
    out_names = predictor.get_output_names()
    lr_size = (LR_HEIGHT, LR_WIDTH)  # what PaddleOCR's export_model.py fixes for SR models

    def reference(x: np.ndarray) -> np.ndarray:
        in_handle.reshape(list(x.shape))
        in_handle.copy_from_cpu(np.ascontiguousarray(x))
        predictor.run()
        for name in out_names:  # the SR output is the one with the upscaled spatial size
            out = predictor.get_output_handle(name).copy_to_cpu()
            if out.ndim == 4 and out.shape[2] > x.shape[2]:
                return out
        raise DataError(f"{model_file}: no output is larger than the input; outputs {out_names}")

    try:
        reference(np.zeros((1, CHANNELS, *lr_size), np.float32))
    except Exception as exc:
        raise DataError(f"{model_file} does not run on a [1, 3, {lr_size[0]}, {lr_size[1]}] input: {exc}") from None
    return Source(
        kind="paddle-inference-model",
        algorithm=algorithm,
        backbone=ALGORITHMS.get(algorithm, "unknown"),
        lr_size=lr_size,
        model_file=model_file,
        params_file=params_file,
        reference=reference,
        reference_name="Paddle Inference (CPU)",
        provenance={
            "kind": "paddle-inference-model",
            "model_file": model_file.name,
            "model_sha256": sha256_file(model_file),
            "params_file": params_file.name,
            "params_sha256": sha256_file(params_file),
        },
    )
