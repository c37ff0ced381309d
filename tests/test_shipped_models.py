"""Every model under models/ is complete: graph(s) matching the manifest, a model card whose figures
are the eval's, the comparison picture; the default model beats bicubic on its own test set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textsr.manifest import read_manifest, sha256_file

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent for p in (ROOT / "models").glob("*/manifest.json"))


def test_a_default_model_ships():
    assert SHIPPED, "models/ must hold the default model so that `make serve` runs out of the box"


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_model_folder_is_complete(folder):
    m = read_manifest(folder)
    for g in m.graphs:
        assert sha256_file(folder / g.file) == g.sha256
        assert g.verification.max_abs_diff <= g.verification.tolerance
        assert (folder / g.file).stat().st_size < 20 * 1024 * 1024  # small enough for git
    card = (folder / "MODEL_CARD.md").read_text()
    metrics = json.loads((folder / "metrics.json").read_text())
    avg = metrics["average"]
    assert f"{avg['sr']['psnr_paddleocr']:.2f}" in card and f"{avg['bicubic']['psnr_paddleocr']:.2f}" in card
    assert (folder / "grid.png").stat().st_size > 10_000
    assert m.name in card and m.backbone in card


@pytest.mark.parametrize("folder", SHIPPED, ids=lambda p: p.name)
def test_model_beats_bicubic(folder):
    avg = json.loads((folder / "metrics.json").read_text())["average"]
    assert avg["sr"]["psnr_paddleocr"] > avg["bicubic"]["psnr_paddleocr"]
    assert avg["sr"]["ssim"] > avg["bicubic"]["ssim"]
