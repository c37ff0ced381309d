"""The two super-resolution networks, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paddle import nn

from training.networks.checkpoint import CheckpointMismatch, checkpoint_filter_fn, load_checkpoint, save_checkpoint
from training.networks.tbsrn import TBSRN, build_tbsrn
from training.networks.tsrn import TSRN, build_tsrn

__all__ = [
    "NETWORKS",
    "TBSRN",
    "TSRN",
    "CheckpointMismatch",
    "build_network",
    "checkpoint_filter_fn",
    "load_checkpoint",
    "save_checkpoint",
]

NETWORKS: dict[str, Callable[..., nn.Layer]] = {"TBSRN": build_tbsrn, "TSRN": build_tsrn}
"""PaddleOCR ``Architecture.Transform.name`` -> builder."""


def build_network(name: str, **kwargs: Any) -> nn.Layer:
    """Build a network by its PaddleOCR name (``TBSRN`` or ``TSRN``)."""
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name](**kwargs)
