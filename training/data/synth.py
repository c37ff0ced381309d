"""``textsr gen-data``: a synthetic TextZoom, written in TextZoom's exact LMDB layout.

Each sample is a word (English words by frequency from ``wordfreq``, numbers, codes; lower, upper,
title and mixed case) rendered in one of the system's fonts, colours and textured backgrounds,
with slight perspective and curvature: the HR crop (32x128). Its LR twin (16x64) goes through a
camera-like chain: defocus and motion blur, downscaling with a random kernel, sensor noise and JPEG.
The test splits are graded by degradation strength (easy < medium < hard) like TextZoom's.
Every sample is a pure function of ``(seed, split, index)``, so a dataset is reproducible.
"""

from __future__ import annotations

import glob
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from textsr.spec import HR_HEIGHT, HR_WIDTH, LR_HEIGHT, LR_WIDTH

FONT_GLOBS = ("/usr/share/fonts/**/*.ttf", "/usr/share/fonts/**/*.otf")
SPLITS = {"train": None, "test/easy": 0, "test/medium": 1, "test/hard": 2}
"""Split name -> degradation level (None: a mix of all three, as training should see)."""


@dataclass(frozen=True)
class Degradation:
    """Ranges for one difficulty level; each sample draws uniformly inside them."""

    defocus: tuple[float, float]
    motion: tuple[int, int]
    noise: tuple[float, float]
    jpeg: tuple[int, int]
    extra_down: tuple[float, float]


LEVELS = (
    Degradation(defocus=(0.3, 0.8), motion=(0, 2), noise=(0.0, 3.0), jpeg=(75, 95), extra_down=(1.0, 1.1)),
    Degradation(defocus=(0.7, 1.3), motion=(0, 4), noise=(2.0, 6.0), jpeg=(50, 80), extra_down=(1.1, 1.4)),
    Degradation(defocus=(1.1, 1.9), motion=(2, 6), noise=(4.0, 10.0), jpeg=(30, 60), extra_down=(1.3, 1.8)),
)


def _draws_latin(path: str) -> bool:
    """Whether the font's character map sends A-Z, a-z and 0-9 to the glyphs of those characters."""
    from fontTools.agl import UV2AGL
    from fontTools.ttLib import TTFont, TTLibError

    try:
        cmap = TTFont(path, lazy=True).getBestCmap() or {}
    except (TTLibError, OSError, AssertionError):
        return False
    chars = string.ascii_letters + string.digits
    return all(cmap.get(ord(c)) in (UV2AGL.get(ord(c)), c, f"uni{ord(c):04X}") for c in chars)


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """Every TrueType/OpenType font on the system that draws Latin letters and digits as themselves,
    sorted (the order is part of determinism).

    Symbol fonts map the Latin code points to other glyphs (URW's Standard Symbols PS draws "p" as
    pi, D050000L draws dingbats): an HR crop drawn with them would not show its label.
    """
    files = sorted({f for pattern in FONT_GLOBS for f in glob.glob(pattern, recursive=True)})
    usable = []
    for f in files:
        try:
            font = ImageFont.truetype(f, 24)
            if font.getbbox("Ag")[2] > 0 and _draws_latin(f):
                usable.append(f)
        except OSError:
            continue
    if not usable:
        raise RuntimeError("no usable fonts under /usr/share/fonts; run scripts/system-deps.sh (Debian font packages)")
    return tuple(usable)


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """English words of 2..14 letters by frequency (wordfreq ships its lists in the wheel)."""
    from wordfreq import top_n_list

    words = [w for w in top_n_list("en", 30000) if w.isascii() and w.isalpha() and 2 <= len(w) <= 14]
    return tuple(words)


def random_label(rng: np.random.Generator) -> str:
    """A word, number or code, cased like signs and labels are."""
    kind = rng.random()
    if kind < 0.12:
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 7)))))
    if kind < 0.2:
        chars = string.ascii_uppercase + string.digits
        return "".join(rng.choice(list(chars), size=int(rng.integers(3, 9))))
    words = vocabulary()
    word = words[int(min(rng.exponential(4000), len(words) - 1))]
    case = rng.random()
    if case < 0.35:
        return word.upper()
    if case < 0.65:
        return word.capitalize()
    if case < 0.7:
        return "".join(c.upper() if rng.random() < 0.5 else c for c in word)
    return word


def _background(rng: np.random.Generator, h: int, w: int, colour: np.ndarray) -> np.ndarray:
    kind = rng.integers(0, 4)
    bg = np.empty((h, w, 3), np.float32)
    bg[:] = colour
    if kind == 1:  # linear gradient
        ramp = np.linspace(-1, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        delta = rng.uniform(-50, 50, 3).astype(np.float32)
        bg += (ramp[None, :, None] if len(ramp) == w else ramp[:, None, None]) * delta
    elif kind == 2:  # smooth texture
        small = rng.normal(0, 30, (max(2, h // 8), max(2, w // 8), 3)).astype(np.float32)
        bg += cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    elif kind == 3:  # grain
        bg += rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    return np.clip(bg, 0, 255)


def render_hr(label: str, rng: np.random.Generator) -> np.ndarray:
    """Render ``label`` into an RGB uint8 HR crop of 32x128."""
    fonts = font_files()
    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(rng.integers(40, 64)))
    left, top, right, bottom = font.getbbox(label)
    tw, th = right - left, bottom - top
    pad_x, pad_y = int(rng.integers(4, 20)), int(rng.integers(4, 14))
    w, h = tw + 2 * pad_x, th + 2 * pad_y
    bg_colour = rng.integers(0, 256, 3)
    fg_colour = np.where(bg_colour > 127, rng.integers(0, 90, 3), rng.integers(165, 256, 3))
    if rng.random() < 0.5:  # lower contrast sometimes
        fg_colour = (0.6 * fg_colour + 0.4 * bg_colour).astype(int)
    canvas = Image.new("L", (w, h), 0)
    ImageDraw.Draw(canvas).text((pad_x - left, pad_y - top), label, font=font, fill=255)
    mask = np.asarray(canvas, np.float32)[..., None] / 255.0
    img = _background(rng, h, w, bg_colour.astype(np.float32)) * (1 - mask) + fg_colour.astype(np.float32) * mask
    # slight perspective
    j = 0.06
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-j, j, (4, 2)).astype(np.float32) * np.float32([w, h])
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    # slight curvature: shift columns vertically along a sine
    if rng.random() < 0.5:
        amp = rng.uniform(0, 0.08) * h
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        ys = ys + amp * np.sin(np.pi * xs / w + rng.uniform(0, np.pi)).astype(np.float32)
        img = cv2.remap(img, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    hr = cv2.resize(img, (HR_WIDTH, HR_HEIGHT), interpolation=cv2.INTER_AREA)
    return np.clip(hr, 0, 255).astype(np.uint8)


def degrade(hr: np.ndarray, level: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Camera-like degradation of an HR crop into its 16x64 LR twin (RGB uint8)."""
    img = hr.astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*level.defocus))
    length = int(rng.integers(level.motion[0], level.motion[1] + 1))
    if length > 1:
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    extra = rng.uniform(*level.extra_down)
    small = (max(8, int(LR_WIDTH / extra)), max(4, int(LR_HEIGHT / extra)))
    interp = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][int(rng.integers(3))]
    img = cv2.resize(img, small, interpolation=interp)
    if small != (LR_WIDTH, LR_HEIGHT):
        img = cv2.resize(img, (LR_WIDTH, LR_HEIGHT), interpolation=cv2.INTER_LINEAR)
    img = img + rng.normal(0, rng.uniform(*level.noise), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*level.jpeg))])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def make_sample(seed: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(HR, LR, label) for one index of one split; the same arguments always give the same sample."""
    split_id = list(SPLITS).index(split)
    rng = np.random.default_rng([seed, split_id, index])
    label = random_label(rng)
    hr = render_hr(label, rng)
    level_id = SPLITS[split]
    level = LEVELS[int(rng.integers(3)) if level_id is None else level_id]
    return hr, degrade(hr, level, rng), label


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_split(out_dir: str | Path, split: str, count: int, seed: int, progress: bool = True) -> Path:
    """Write ``count`` samples of ``split`` as a TextZoom LMDB under ``out_dir/split``."""
    import lmdb
    from tqdm import tqdm

    path = Path(out_dir) / split
    path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=max(64 << 20, count * 64 << 10))
    with env.begin(write=True) as txn:
        for i in tqdm(range(1, count + 1), desc=split, unit="img", disable=not progress):
            hr, lr, label = make_sample(seed, split, i)
            txn.put(b"image_hr-%09d" % i, _png(hr))
            txn.put(b"image_lr-%09d" % i, _png(lr))
            txn.put(b"label-%09d" % i, label.encode("utf-8"))
        txn.put(b"num-samples", str(count).encode("ascii"))
    env.close()
    return path


def generate(out_dir: str | Path, train: int, test: int, seed: int = 0, progress: bool = True) -> dict[str, int]:
    """Write train (``train`` samples) and each test split (``test`` samples); returns the counts."""
    counts = {"train": train, "test/easy": test, "test/medium": test, "test/hard": test}
    for split, n in counts.items():
        if n > 0:
            write_split(out_dir, split, n, seed, progress)
    return counts
