"""Facts about the super-resolution task that training, conversion and serving all rely on.

The service never reads these: it reads the same numbers from a model's manifest, which the
converter writes from here. Training and conversion import them so that the numbers exist once.
"""

from __future__ import annotations

import string

LR_HEIGHT = 16
"""Height of the low-resolution model input (PaddleOCR: ``sr_image_shape`` 32 divided by the scale)."""
LR_WIDTH = 64
"""Width of the low-resolution model input."""
SCALE = 2
"""Upscaling factor of both networks (PaddleOCR ``scale_factor``/``down_sample_scale``)."""
HR_HEIGHT = LR_HEIGHT * SCALE
HR_WIDTH = LR_WIDTH * SCALE
CHANNELS = 3
"""RGB, float in [0, 1]."""

INPUT_NAME = "lr"
OUTPUT_NAME = "sr"
PRIOR_NAME = "prior"
"""The second input of a model with a text prior: the service recognizer's reading of ``lr``."""
GLYPHS_NAME = "glyphs"
"""The third input of a model with drawn glyphs (``prior_glyphs``): that reading drawn as text, one channel."""
PRIOR_GENERATOR_FILE = "prior_generator.onnx"
"""In a model's folder: the fine-tuned recognizer that computes the prior of a model trained with
``Architecture.Transform.prior_trainable`` (the others' prior comes from the service recognizer itself)."""
PRIOR_CHARSET = string.digits + string.ascii_letters
"""The characters a text prior keeps of the recognizer's classes (after the blank; one "rest" class follows):
those of ``textsr gen-data``'s labels and of TextZoom's. The manifest of a model with a prior carries them."""

TELESCOPE_ALPHABET = "-0123456789abcdefghijklmnopqrstuvwxyz"
"""Classes of the Telescope recognizer (index 0 is the end/padding symbol ``-``)."""
GESTALT_ALPHABET = "0123456789"
"""Classes of the Gestalt recognizer: stroke codes, not characters."""
