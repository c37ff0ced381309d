"""PSNR/SSIM as PaddleOCR computes them, cross-checked with scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from training.metrics import SRMetric, psnr_batch, psnr_per_image, ssim_per_image


def pair(seed: int = 0):
    rng = np.random.default_rng(seed)
    hr = rng.random((4, 3, 32, 128))
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1)
    return sr, hr


def test_identical_images():
    _, hr = pair()
    assert psnr_batch(hr, hr) == math.inf
    assert np.allclose(ssim_per_image(hr, hr), 1.0)
    m = SRMetric()
    m.update(hr, hr)
    assert m.summary()["psnr_per_image"] == math.inf and math.isclose(m.summary()["ssim"], 1.0)


def test_psnr_matches_skimage():
    sr, hr = pair(1)
    for i in range(len(sr)):
        assert math.isclose(psnr_per_image(sr, hr)[i], peak_signal_noise_ratio(hr[i], sr[i], data_range=1.0), rel_tol=1e-9)
    assert math.isclose(psnr_batch(sr, hr), peak_signal_noise_ratio(hr, sr, data_range=1.0), rel_tol=1e-9)


def test_ssim_matches_skimage_gaussian_window():
    sr, hr = pair(2)
    ours = ssim_per_image(sr, hr)
    for i in range(len(sr)):
        ref = np.mean([
            structural_similarity(hr[i, c], sr[i, c], data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
            for c in range(3)
        ])
        # skimage ignores the 5-pixel border that zero padding distorts; compare the interiors' agreement loosely
        assert abs(ours[i] - ref) < 0.03
    assert np.all(ours < 1.0) and np.all(ours > 0.5)


def test_psnr_batch_is_not_mean_of_images():
    sr, hr = pair(3)
    sr[0] = hr[0]  # one perfect image: per-image mean is infinite, the batch figure is finite
    assert math.isfinite(psnr_batch(sr, hr)) and not math.isfinite(psnr_per_image(sr, hr).mean())


def test_paired_counts():
    from training.metrics import paired

    assert paired("1110", "0001") == {"crops": 4, "only_first": 3, "only_second": 1, "p": 0.625}
    assert paired("1100", "1010") == {"crops": 4, "only_first": 1, "only_second": 1, "p": 1.0}
    with pytest.raises(ValueError, match="4 and 3 crops"):
        paired("1100", "101")
