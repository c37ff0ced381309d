"""The two super-resolution networks, by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from paddle import nn

from core.errors import ConfigError
from training.networks.checkpoint import (
    CheckpointMismatch,
    checkpoint_filter_fn,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from training.networks.tbsrn import TBSRN, build_tbsrn
from training.networks.tsrn import TSRN, build_tsrn

__all__ = [
    "NETWORKS",
    "TBSRN",
    "TSRN",
    "CheckpointMismatch",
    "PaddleOCRLayout",
    "build_network",
    "build_training_layout",
    "checkpoint_filter_fn",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]

NETWORKS: dict[str, Callable[..., nn.Layer]] = {"TBSRN": build_tbsrn, "TSRN": build_tsrn}
"""PaddleOCR ``Architecture.Transform.name`` -> builder."""


def build_network(name: str, **kwargs: Any) -> nn.Layer:
    """Build a network by its PaddleOCR name (``TBSRN`` or ``TSRN``)."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    return NETWORKS[name](**kwargs)


class PaddleOCRLayout(nn.Layer):
    """The SR network and the frozen layers a loss carries, under the names PaddleOCR's checkpoints use.

    PaddleOCR keeps the text-focus recognizer inside the SR network (``r34_transformer.*`` next to
    ``block1.*``); here the recognizer belongs to the loss, and this view puts the two side by side
    again for saving and strict loading. It shares the layers: nothing is copied.
    """

    def __init__(self, network: nn.Layer, carried: dict[str, nn.Layer] | None = None) -> None:
        super().__init__()
        for name, layer in network.named_children():
            self.add_sublayer(name, layer)
        for name, layer in (carried or {}).items():
            if name in dict(network.named_children()):
                raise ConfigError(f"a loss's layer {name!r} would shadow the network's")
            self.add_sublayer(name, layer)


def build_training_layout(name: str, recognizer_width: float = 1.0, **kwargs: Any) -> PaddleOCRLayout:
    """PaddleOCR's whole training model for a backbone: the network with its STN and the text-focus recognizer."""
    from training.networks.recognizer import Transformer

    network = build_network(name, stn=True, **kwargs)
    recognizer = Transformer(type(network).recognizer_alphabet, recognizer_width)
    return PaddleOCRLayout(network, {type(network).recognizer_attr: recognizer})
