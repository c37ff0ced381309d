"""PaddleOCR-schema YAML configs: loading, ``-o Section.key=value`` overrides, the architecture.

Users bring PaddleOCR's own ``configs/sr/*.yml`` unchanged. Overrides are parsed with
``yaml.safe_load`` so numbers stay numbers (as PaddleOCR's ``ArgsParser`` does) and a typo in a
section name fails loudly. No global state: every function returns a new value.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError, InputNotFound
from core.spec import SCALE

SECTIONS = ("Global", "Optimizer", "Architecture", "Loss", "PostProcess", "Metric", "Train", "Eval")
ALGORITHMS = {"Telescope": "TBSRN", "Gestalt": "TSRN"}
"""PaddleOCR ``Architecture.algorithm`` -> the backbone its published config uses."""
TRANSFORM_KEYS = {"name", "STN", "scale_factor", "width", "height", "srb_nums", "mask", "hidden_units", "in_channels", "infer_mode",
                  "bicubic_residual", "residual_scale", "text_prior", "prior_trainable", "prior_rows", "prior_glyphs",
                  "prior_glyph_tail"}
"""PaddleOCR's Transform keys, plus ``bicubic_residual`` (ours: output = bicubic(LR) + ``residual_scale`` * network),
``text_prior`` (ours: the service recognizer's reading of the LR as a second input of the trunk), ``prior_trainable``
(ours: that reading from a fine-tuned copy of the recognizer, trained with the network), ``prior_rows`` (ours: the
prior's map gets that many rows of its own, a learned glyph template per class, instead of one row repeated),
``prior_glyphs`` (ours: the prior's reading drawn as text joins that map, a third graph input) and ``prior_glyph_tail``
(ours: that drawing made at the SR's size also joins the features just before the last convolution)."""


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a PaddleOCR YAML config and apply ``Section.key=value`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"config not found: {path}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(cfg).__name__}")
    unknown = sorted(set(cfg) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown top-level sections {unknown}; PaddleOCR's are {list(SECTIONS)}")
    return apply_overrides(cfg, overrides or [])


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``cfg`` with each ``A.b.c=value`` set (value parsed as YAML)."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like Section.key=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if keys[0] not in SECTIONS:
            raise ConfigError(f"override {item!r}: unknown section {keys[0]!r}; choose one of {list(SECTIONS)}")
        node = cfg.setdefault(keys[0], {})
        for key in keys[1:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {key!r} is not a section")
        value = _parse_value(raw)
        if len(keys) == 1:
            cfg[keys[0]] = value
        else:
            node[keys[-1]] = value
    return cfg


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _parse_value(raw: str) -> Any:
    """YAML value of an override; ``2e-4`` is a float here (PyYAML's YAML 1.1 reads it as a string)."""
    value = yaml.safe_load(raw)
    if isinstance(value, str) and _FLOAT.match(value.strip()):
        return float(value)
    return value


@dataclass(frozen=True)
class ArchitectureSpec:
    """What ``Architecture`` says: the algorithm, the backbone and the backbone's arguments."""

    algorithm: str
    backbone: str
    stn: bool
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def lr_size(self) -> tuple[int, int]:
        return self.kwargs["lr_size"]


def architecture(cfg: dict[str, Any]) -> ArchitectureSpec:
    """Read ``Architecture`` into an :class:`ArchitectureSpec`, refusing what we cannot build."""
    arch = cfg.get("Architecture")
    if not isinstance(arch, dict):
        raise ConfigError("config has no Architecture section")
    if arch.get("model_type") != "sr":
        raise ConfigError(f"Architecture.model_type is {arch.get('model_type')!r}; only 'sr' models convert")
    algorithm = arch.get("algorithm")
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {algorithm!r}; supported: {sorted(ALGORITHMS)}")
    transform = arch.get("Transform") or {}
    unknown = sorted(set(transform) - TRANSFORM_KEYS)
    if unknown:
        raise ConfigError(f"Architecture.Transform has unknown keys {unknown}; known: {sorted(TRANSFORM_KEYS)}")
    backbone = transform.get("name")
    if backbone != ALGORITHMS[algorithm]:
        raise ConfigError(f"algorithm {algorithm} uses Transform.name {ALGORITHMS[algorithm]}, config says {backbone!r}")
    if transform.get("mask"):
        raise ConfigError("Architecture.Transform.mask=True (4-channel input) is not supported")
    scale = int(transform.get("scale_factor", SCALE))
    height, width = int(transform.get("height", 32)), int(transform.get("width", 128))
    kwargs = {
        "scale_factor": scale,
        "srb_nums": int(transform.get("srb_nums", 5)),
        "hidden_units": int(transform.get("hidden_units", 32)),
        "lr_size": (height // scale, width // scale),
        "bicubic_residual": flag(transform, "bicubic_residual", False, "Architecture.Transform"),
        "residual_scale": _residual_scale(transform),
    }
    if flag(transform, "text_prior", False, "Architecture.Transform"):
        kwargs["text_prior"] = True  # only when on: the converter's and older callers' networks take no such key
    if flag(transform, "prior_trainable", False, "Architecture.Transform"):
        kwargs["prior_trainable"] = True
    rows = transform.get("prior_rows")
    if rows:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
            raise ConfigError(f"Architecture.Transform.prior_rows must be a whole number >= 0, got {rows!r}")
        kwargs["prior_rows"] = rows
    if flag(transform, "prior_glyphs", False, "Architecture.Transform"):
        kwargs["prior_glyphs"] = True
    if flag(transform, "prior_glyph_tail", False, "Architecture.Transform"):
        if not kwargs.get("prior_glyphs"):
            raise ConfigError("Architecture.Transform.prior_glyph_tail needs prior_glyphs: true (it joins the drawing)")
        kwargs["prior_glyph_tail"] = True
    for key in ("prior_rows", "prior_glyphs"):  # they shape the prior's map: nothing to shape without one
        if key in kwargs and not kwargs.get("text_prior"):
            raise ConfigError(f"Architecture.Transform.{key} needs text_prior: true (it shapes the prior's map)")
    return ArchitectureSpec(algorithm, backbone, flag(transform, "STN", False, "Architecture.Transform"), kwargs)


def _residual_scale(transform: dict[str, Any]) -> float:
    """``Architecture.Transform.residual_scale``: the strength of the network's part of a ``bicubic_residual`` output
    (default 1). Lowered after training (chosen on val/ by ``training.residual_scale``), it trades fidelity for
    readability; it has no parameter of its own, so any checkpoint loads under any scale."""
    value = transform.get("residual_scale")
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"Architecture.Transform.residual_scale must be a number in (0, 1], got {value!r}")
    return float(value)  # the network refuses it without bicubic_residual


def flag(section: dict[str, Any], key: str, default: bool, where: str = "Global") -> bool:
    """A YAML boolean (``true``/``false``; an absent or empty key is ``default``), checked: ``bool("maybe")`` is true."""
    value = section.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false, got {value!r}")
    return value


def recognizer_width(cfg: dict[str, Any]) -> float:
    """``Global.recognizer_width``: channel scale of the text-focus recognizer (ours; default 1.0).

    1.0 is PaddleOCR's layout (~62M parameters); the pretraining run and the SR run that loads its
    weights must use the same value, so both read it here.
    """
    raw = (cfg.get("Global") or {}).get("recognizer_width", 1.0)
    try:
        width = float(raw if raw is not None else 1.0)
    except (TypeError, ValueError):
        raise ConfigError(f"Global.recognizer_width must be a number, got {raw!r}") from None
    if not recognizer_width_ok(width):
        raise ConfigError(f"Global.recognizer_width must be {RECOGNIZER_WIDTH_RULE}, got {raw!r}")
    return width


RECOGNIZER_WIDTH_RULE = "in (0, 1] with 1024 x width a multiple of 16"


def recognizer_width_ok(width: float) -> bool:
    """Whether the recognizer can be built at ``width`` (its d_model, 1024 x width, splits into 16 heads)."""
    return 0 < width <= 1 and (1024 * width) % 16 == 0
