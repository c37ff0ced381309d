"""The manifest that travels beside every ``model.onnx``: the one record of a model's facts.

The converter writes it; the service reads input shape, scale, value range and checksums from it
instead of hard-coding them (timm's ``_cfg`` and RapidOCR's ``default_models.yaml`` play this role).
Pure pydantic: importable without paddle or onnxruntime.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InputNotFound

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1


class TensorSpec(BaseModel):
    """Name, dtype and shape of one graph input or output; ``-1`` marks the batch axis."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    dtype: str = "float32"
    shape: list[int]


class Verification(BaseModel):
    """How the ONNX graph was checked against Paddle at conversion time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_abs_diff: float
    tolerance: float
    batch_sizes: list[int]
    inputs: list[str] = Field(description="kinds of inputs compared, e.g. random, rendered-text")
    reference: str = Field(description="what produced the reference outputs")


class GraphFile(BaseModel):
    """One ONNX file of the model (fp32, or the optional fp16 variant)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file: str
    sha256: str
    precision: str
    verification: Verification


class TextPriorSpec(BaseModel):
    """The second input of a model trained with a text prior: the service recognizer's reading of the LR batch.

    The runtime reads the LR batch with ``recognizer`` (its file in the rapidocr package, checked by ``recognizer_sha256``),
    keeps the blank's, ``characters``' and a "rest" class's probabilities (1 - the others') over the first
    ``input.shape[2]`` timesteps, and feeds them as ``input`` ``[N, classes, timesteps]``. With ``bundled``, the
    recognizer is a file of the model's own folder: a copy of the service recognizer fine-tuned with the SR network
    (``Architecture.Transform.prior_trainable``). With ``glyphs`` (``Architecture.Transform.prior_glyphs``) the graph
    has a third input: that reading drawn as text, ``[N, 1, h, w]`` at the LR's size, or at the SR's with
    ``prior_glyph_tail`` (``service.text_prior.glyph_image``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    input: TensorSpec
    recognizer: str
    recognizer_sha256: str
    characters: str
    bundled: bool | None = Field(default=None, description="the recognizer file lies in the model's folder")
    glyphs: TensorSpec | None = Field(default=None, description="the graph's input for the reading drawn as text")

    @property
    def inputs(self) -> list[TensorSpec]:
        """The graph inputs this prior feeds, besides the image."""
        return [self.input, *([self.glyphs] if self.glyphs is not None else [])]


class Manifest(BaseModel):
    """Everything a runtime needs to know about a converted model, and its provenance."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = SCHEMA_VERSION
    name: str
    algorithm: str = Field(description="PaddleOCR algorithm name: Telescope, Gestalt or unknown")
    backbone: str = Field(description="TBSRN, TSRN or unknown")
    input: TensorSpec
    output: TensorSpec
    scale: int
    value_range: tuple[float, float] = (0.0, 1.0)
    color_order: str = "RGB"
    resize_interpolation: str = "bicubic"
    opset: int
    graphs: list[GraphFile]
    source: dict[str, str] = Field(description="kind, file names and sha256 of the converted Paddle model")
    versions: dict[str, str]
    created: str
    text_prior: TextPriorSpec | None = Field(default=None, description="set for a model with a text prior")

    @property
    def lr_size(self) -> tuple[int, int]:
        """(height, width) of the low-resolution input."""
        return self.input.shape[2], self.input.shape[3]

    def graph(self, precision: str = "fp32") -> GraphFile:
        """The graph file of the given precision."""
        for g in self.graphs:
            if g.precision == precision:
                return g
        raise KeyError(f"model {self.name!r} has no {precision} graph; it has {[g.precision for g in self.graphs]}")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: str | Path) -> Manifest:
    """Read and validate ``model_dir/manifest.json``."""
    path = Path(model_dir) / MANIFEST_NAME
    if not path.is_file():
        raise InputNotFound(f"no {MANIFEST_NAME} in {model_dir}")
    return Manifest.model_validate_json(path.read_text())


def write_manifest(model_dir: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as indented JSON into ``model_dir``."""
    path = Path(model_dir) / MANIFEST_NAME
    path.write_text(manifest.model_dump_json(indent=2, exclude_none=True) + "\n")
    return path
