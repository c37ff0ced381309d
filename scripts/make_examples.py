"""Write the playground's example crops: service/http/static/examples/*.png and examples.json.

Every crop is made by this project's own renderer, ``training.data.synth.make_sample`` (a pure
function of seed, split and index): the first five LR crops (16x64) of the held-out ``test/medium``
split at seed 0, taken in order, not picked for how well the model does on them, and one long line
(16x192) made by putting the first three ``test/easy`` LR crops side by side, so that the page
shows ``mode=tile``. ``tests/service/test_playground.py`` re-runs this script into a temporary
folder and checks that the committed files are byte for byte what it writes.

The renderer draws each word in a font picked from the system's fonts, so the same crops need the
same font set: examples.json records a fingerprint of it (scripts/system-deps.sh installs the
Debian fonts these were made with).

    .venv/bin/python scripts/make_examples.py            # rewrites service/http/static/examples/
    .venv/bin/python scripts/make_examples.py --out DIR  # writes elsewhere
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "service" / "http" / "static" / "examples"
SEED = 0
SINGLES = ("test/medium", (1, 2, 3, 4, 5))
LONG_LINE = ("test/easy", (1, 2, 3))
if str(ROOT) not in sys.path:  # run as a script: make `training` importable
    sys.path.insert(0, str(ROOT))
LICENSE = "Apache-2.0, like the project (rendered by its own code; no third-party images)"


def font_fingerprint() -> dict[str, object]:
    """How many fonts the renderer chooses from and a sha256 of their sorted paths (its choice is an index into them)."""
    from training.data.synth import font_files

    fonts = font_files()
    return {"count": len(fonts), "sha256": hashlib.sha256("\n".join(fonts).encode()).hexdigest()}


def _png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def make_examples(out: Path) -> dict[str, object]:
    """Write the example PNGs and examples.json into ``out``; returns the examples.json document."""
    from training.data.synth import make_sample

    out.mkdir(parents=True, exist_ok=True)
    entries = []
    split, indices = SINGLES
    for n, index in enumerate(indices, 1):
        _, lr, label = make_sample(SEED, split, index)
        name = f"example-{n}.png"
        (out / name).write_bytes(_png(lr))
        entries.append({"file": name, "label": label, "width": lr.shape[1], "height": lr.shape[0],
                        "seed": SEED, "split": split, "indices": [index], "made": "the LR crop of make_sample(seed, split, index)"})
    split, indices = LONG_LINE
    samples = [make_sample(SEED, split, i) for i in indices]
    line = np.concatenate([lr for _, lr, _ in samples], axis=1)
    name = "example-line.png"
    (out / name).write_bytes(_png(line))
    entries.append({"file": name, "label": " ".join(label for _, _, label in samples), "width": line.shape[1],
                    "height": line.shape[0], "seed": SEED, "split": split, "indices": list(indices),
                    "made": "the LR crops of make_sample(seed, split, index) for each index, side by side: one long line"})
    doc = {
        "source": "scripts/make_examples.py (training.data.synth.make_sample: synthetic words, Real-ESRGAN-style LR chain)",
        "license": LICENSE,
        "fonts": font_fingerprint(),
        "examples": entries,
    }
    (out / "examples.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"folder to write (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    doc = make_examples(args.out)
    for e in doc["examples"]:
        print(f"{args.out / e['file']}: {e['width']}x{e['height']} {e['label']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
