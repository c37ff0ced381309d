"""Loading PaddleOCR-layout checkpoints into our networks, strictly, with readable errors.

One function, :func:`checkpoint_filter_fn`, turns whatever a user brings (a bare network dict,
PaddleOCR's ``BaseModel`` dict with a ``transform.`` prefix, or a dict wrapped in a container)
into exactly the keys of the model at hand; :func:`load_checkpoint` then refuses any mismatch.
The converter calls these and never reimplements them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle import nn

from core.errors import DataError, InputNotFound

PREFIXES = ("transform.", "model.transform.", "_layers.transform.")
"""Prefixes PaddleOCR wrappers put before the SR network's keys (BaseModel, DataParallel)."""
CONTAINER_KEYS = ("state_dict", "model")
TRAINING_ONLY = ("stn_head.", "transformer.", "r34_transformer.")
"""Keys that only the training-time model has: the STN head and the frozen recognizer."""


class CheckpointMismatch(DataError):
    """A checkpoint does not fit the network; the message lists every offending key."""

    def __init__(self, missing: list[str], unexpected: list[str], wrong_shape: list[str], source: str = "") -> None:
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape
        parts = [f"checkpoint {source} does not match the network".replace("  ", " ")]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                shown = ", ".join(keys[:12]) + (f", ... ({len(keys) - 12} more)" if len(keys) > 12 else "")
                parts.append(f"{len(keys)} {title} keys: {shown}")
        super().__init__("; ".join(parts))


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in (value.shape if hasattr(value, "shape") else np.shape(value)))


def checkpoint_filter_fn(
    state_dict: Mapping[str, Any], model: nn.Layer, drop_training_only: bool = True, optional: tuple[str, ...] = ()
) -> dict:
    """Return ``state_dict`` rewritten to ``model``'s key names, checking every key and shape.

    Args:
        state_dict: a PaddleOCR ``.pdparams`` dict, bare or prefixed (``transform.``) or wrapped.
        model: the network the weights are for.
        drop_training_only: drop STN and recognizer keys that ``model`` was built without
            (an export model has neither). Keys that ``model`` has are required, except:
        optional: prefixes of ``model``'s keys that may be absent (left as they are), e.g. the
            recognizer's when its weights come from a file of their own.

    Returns:
        A new dict with the keys of ``model.state_dict()`` (all but absent optional ones).

    Raises:
        CheckpointMismatch: listing missing, unexpected and wrongly shaped keys.
    """
    for key in CONTAINER_KEYS:  # unwrap {"state_dict": {...}} style containers
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
    target = model.state_dict()
    def strip(key: str) -> str:
        if key not in target:
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    return key[len(prefix) :]
        return key

    out = {strip(key): value for key, value in state_dict.items()}
    if drop_training_only:
        out = {k: v for k, v in out.items() if k in target or not k.startswith(TRAINING_ONLY)}
    missing = sorted(k for k in set(target) - set(out) if not (optional and k.startswith(optional)))
    unexpected = sorted(set(out) - set(target))
    wrong = sorted(
        f"{k} {list(_shape(out[k]))} != {list(_shape(target[k]))}"
        for k in set(out) & set(target)
        if _shape(out[k]) != _shape(target[k])
    )
    if missing or unexpected or wrong:
        raise CheckpointMismatch(missing, unexpected, wrong)
    return out


def read_checkpoint(path: str | Path) -> dict:
    """A ``.pdparams`` file's parameter dict; a missing file or one that is not a parameter dict is named."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFound(f"checkpoint not found: {path}")
    try:
        state = paddle.load(str(path))
    except Exception as exc:  # paddle raises many types for a corrupt file
        raise DataError(f"cannot read checkpoint {path}: {exc}") from None
    if not isinstance(state, Mapping):
        raise DataError(f"checkpoint {path} holds a {type(state).__name__}, not a parameter dict")
    return state


def load_checkpoint(
    model: nn.Layer, path: str | Path, drop_training_only: bool = True, optional: tuple[str, ...] = ()
) -> nn.Layer:
    """Load a ``.pdparams`` file into ``model`` strictly (see :func:`checkpoint_filter_fn`)."""
    state = read_checkpoint(path)
    try:
        filtered = checkpoint_filter_fn(state, model, drop_training_only, optional)
    except CheckpointMismatch as exc:
        raise CheckpointMismatch(exc.missing, exc.unexpected, exc.wrong_shape, source=str(path)) from None
    with warnings.catch_warnings():  # Paddle warns of each key left out; only optional ones can be, by choice
        warnings.filterwarnings("ignore", message="Skip loading for")
        model.set_state_dict(filtered)
    return model


def save_checkpoint(model: nn.Layer, path: str | Path, prefix: str = "transform.") -> Path:
    """Save ``model``'s parameters as a ``.pdparams`` file in PaddleOCR's layout.

    PaddleOCR's ``BaseModel`` holds the SR network as ``transform``, so its checkpoints carry the
    ``transform.`` prefix; pass ``prefix=""`` for a bare network dict.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paddle.save({prefix + k: v for k, v in model.state_dict().items()}, str(path))
    return path
