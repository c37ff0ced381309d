"""Parity check: the ONNX graph must compute what the Paddle model computes.

Inputs are random tensors and rendered text crops (dark and light words on plain and noisy
backgrounds, degraded like real LR crops), at batch 1 and 7 so that the dynamic batch axis is
exercised with an odd size. Any difference above the tolerance fails the conversion.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from convert.errors import VerificationError
from core.manifest import Verification

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2
"""fp16 keeps ~3 significant digits; 0.05 on a [0, 1] image is about 13 grey levels, at the worst pixel."""
BATCH_SIZES = (1, 7)
WORDS = ("TELESCOPE", "gestalt", "Paddle", "2x128", "ONNX", "street", "EXIT", "cafe42", "hello", "Open24h")


def render_text_crops(n: int, lr_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``n`` word crops rendered at 2x the LR size and downscaled: float32 [n, 3, h, w] in [0, 1]."""
    rng = np.random.default_rng(seed)
    h, w = lr_size
    crops = []
    for i in range(n):
        bg = rng.integers(0, 256, 3)
        fg = 255 - bg
        img = np.empty((2 * h, 2 * w, 3), np.uint8)
        img[:] = bg
        word = WORDS[(i + int(rng.integers(len(WORDS)))) % len(WORDS)]
        scale = 2 * h / 30 * rng.uniform(0.7, 1.0)
        (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        fit = min(1.0, (2 * w - 4) / max(tw, 1))
        org = (2, int(h + th * fit / 2))
        cv2.putText(img, word, org, cv2.FONT_HERSHEY_SIMPLEX, scale * fit, fg.tolist(), 2, cv2.LINE_AA)
        img = img.astype(np.float32) + rng.normal(0, rng.uniform(0, 20), img.shape).astype(np.float32)
        img = cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), rng.uniform(0.3, 1.2))
        lr = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
        crops.append(np.clip(lr, 0, 255).transpose(2, 0, 1) / 255.0)
    return np.stack(crops).astype(np.float32)


def verification_inputs(lr_size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Named input batches: random and rendered text, at each size in ``BATCH_SIZES``."""
    rng = np.random.default_rng(seed)
    batches = {}
    for b in BATCH_SIZES:
        batches[f"random-b{b}"] = rng.random((b, 3, *lr_size), dtype=np.float32)
        batches[f"text-b{b}"] = render_text_crops(b, lr_size, seed=seed + b)
    return batches


def reference_outputs(reference: Callable[[np.ndarray], np.ndarray], lr_size: tuple[int, int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run the Paddle reference once on every verification batch: name -> (input, output clipped to [0, 1])."""
    return {name: (x, np.clip(reference(x), 0.0, 1.0)) for name, x in verification_inputs(lr_size).items()}


def verify(
    expected: dict[str, tuple[np.ndarray, np.ndarray]],
    candidate: Callable[[np.ndarray], np.ndarray],
    tolerance: float,
    reference_name: str,
) -> Verification:
    """Compare ``candidate`` (ONNX Runtime) with the reference outputs from :func:`reference_outputs`."""
    worst, where = 0.0, ""
    for name, (x, want) in expected.items():
        got = candidate(x)
        if got.shape != want.shape:
            raise VerificationError(f"{name}: ONNX output shape {got.shape} != Paddle output shape {want.shape}")
        diff = float(np.abs(got.astype(np.float64) - want).max())
        if not np.isfinite(diff) or diff > worst:
            worst, where = diff, name
    if not np.isfinite(worst) or worst > tolerance:
        raise VerificationError(
            f"ONNX Runtime differs from {reference_name} by {worst:.3g} on {where} (tolerance {tolerance:g})"
        )
    return Verification(
        max_abs_diff=worst,
        tolerance=tolerance,
        batch_sizes=list(BATCH_SIZES),
        inputs=["random", "rendered-text"],
        reference=reference_name,
    )
