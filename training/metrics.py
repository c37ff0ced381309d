"""PSNR and SSIM exactly as PaddleOCR's ``SRMetric`` computes them, plus the per-image variants.

PaddleOCR: PSNR on images in [0, 1] scaled to 255, with the MSE averaged over a whole batch (all
images, all channels) and the reported figure the mean over batches of 16; SSIM with an 11x11
Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, per channel, zero padding, averaged.
Per-image PSNR averaged is a different (higher-variance) number; we report both and say which.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import convolve

from core.errors import DataError


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar test: p-value of ``only_a`` vs ``only_b`` discordant pairs under p = 1/2."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def paired(a: str, b: str) -> dict[str, float]:
    """Paired comparison of two per-crop hit strings ("1" read right): who reads which crops, McNemar's p."""
    if len(a) != len(b):
        raise DataError(f"paired comparison of {len(a)} and {len(b)} crops")
    only_a = sum(x == "1" and y == "0" for x, y in zip(a, b))
    only_b = sum(x == "0" and y == "1" for x, y in zip(a, b))
    return {"crops": len(a), "only_first": only_a, "only_second": only_b, "p": mcnemar_p(only_a, only_b)}


def psnr_batch(sr: np.ndarray, hr: np.ndarray) -> float:
    """PaddleOCR's PSNR of one batch: MSE over the whole batch, on a 255 scale."""
    mse = float(np.mean((sr.astype(np.float64) * 255 - hr.astype(np.float64) * 255) ** 2))
    return float("inf") if mse == 0 else 20 * np.log10(255.0 / np.sqrt(mse))


def psnr_per_image(sr: np.ndarray, hr: np.ndarray) -> np.ndarray:
    """PSNR of each image of a batch ``[N, C, H, W]`` (values in [0, 1])."""
    mse = np.mean((sr.astype(np.float64) - hr.astype(np.float64)) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 20 * np.log10(1.0 / np.sqrt(mse))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def ssim_per_image(sr: np.ndarray, hr: np.ndarray, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM of each image of a batch ``[N, C, H, W]`` in [0, 1], averaged over channels and pixels."""
    w = _gaussian_window(window, sigma)
    c1, c2 = 0.01**2, 0.03**2
    out = np.empty(sr.shape[0])
    for n in range(sr.shape[0]):
        vals = []
        for c in range(sr.shape[1]):
            x, y = sr[n, c].astype(np.float64), hr[n, c].astype(np.float64)

            def f(img: np.ndarray) -> np.ndarray:
                return convolve(img, w, mode="constant", cval=0.0)

            mx, my = f(x), f(y)
            sxx, syy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
            vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2)))
        out[n] = np.mean(vals)
    return out


class SRMetric:
    """Accumulates batches; ``summary()`` gives PaddleOCR's figures and the per-image ones."""

    def __init__(self) -> None:
        self.batch_psnr: list[float] = []
        self.image_psnr: list[float] = []
        self.image_ssim: list[float] = []

    def update(self, sr: np.ndarray, hr: np.ndarray) -> None:
        self.batch_psnr.append(psnr_batch(sr, hr))
        self.image_psnr.extend(psnr_per_image(sr, hr).tolist())
        self.image_ssim.extend(ssim_per_image(sr, hr).tolist())

    def summary(self) -> dict[str, float]:
        finite = [p for p in self.image_psnr if np.isfinite(p)]
        return {
            "psnr_paddleocr": float(np.mean(self.batch_psnr)) if self.batch_psnr else float("nan"),
            "psnr_per_image": float(np.mean(finite)) if finite else float("inf"),
            "ssim": float(np.mean(self.image_ssim)) if self.image_ssim else float("nan"),
            "images": len(self.image_ssim),
        }
