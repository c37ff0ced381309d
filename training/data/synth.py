"""``textsr gen-data``: a synthetic TextZoom, written in TextZoom's exact LMDB layout.

Each sample is a word (English words by frequency from ``wordfreq``, numbers, codes; lower, upper,
title and mixed case) rendered in one of the system's fonts, colours and textured backgrounds,
with slight perspective and curvature: the HR crop (32x128). Its LR twin (16x64) goes through a
Real-ESRGAN-style chain: Gaussian blur (isotropic or anisotropic), resizing with a random kernel,
colour or grey noise and JPEG, in a random order, sometimes twice. The test splits are graded by
strength (easy < medium < hard) like TextZoom's; ``test/unseen`` uses operations training never
sees (motion blur, nearest/Lanczos resizing, Poisson noise, WebP), so it measures generalisation.
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

from core.errors import ConfigError, InputNotFound, TextSRError
from core.spec import HR_HEIGHT, HR_WIDTH, LR_HEIGHT, LR_WIDTH

FONT_GLOBS = ("/usr/share/fonts/**/*.ttf", "/usr/share/fonts/**/*.otf")
SPLITS = {"train": None, "val": None, "test/easy": 0, "test/medium": 1, "test/hard": 2, "test/unseen": 3}
"""Split name -> degradation level (None: a mix of the three training levels, as training should see).
``val`` is for choosing checkpoints (training-time evaluation); ``test/*`` only for reporting."""


@dataclass(frozen=True)
class Degradation:
    """One level of the Real-ESRGAN-style LR chain: which operations run and the ranges they draw from.

    Each stage applies every operation in ``kinds`` once, in a random order; a second stage (weaker:
    half the blur and noise) follows with probability ``second_stage``; then a resize to 16x64.
    """

    blur: tuple[float, float]  # Gaussian kernel sigma in HR pixels (isotropic or rotated anisotropic)
    down: tuple[float, float]  # downscale factor of the in-chain resize, relative to the LR size
    noise: tuple[float, float]  # noise strength in grey levels (std for Gaussian, scale for Poisson)
    quality: tuple[int, int]  # JPEG / WebP quality
    second_stage: float
    kinds: tuple[str, ...] = ("blur", "resize", "noise", "jpeg")


TRAIN_KINDS = ("blur", "resize", "noise", "jpeg")
UNSEEN_KINDS = ("motion", "resize_nearest", "poisson", "webp")
"""Operations the unseen split uses instead: none of them appears in training data."""

LEVELS = (
    Degradation(blur=(0.2, 0.9), down=(1.0, 1.15), noise=(0.0, 3.0), quality=(70, 95), second_stage=0.2),
    Degradation(blur=(0.6, 1.5), down=(1.1, 1.5), noise=(1.5, 7.0), quality=(45, 80), second_stage=0.4),
    Degradation(blur=(1.0, 2.2), down=(1.3, 1.9), noise=(3.0, 11.0), quality=(25, 60), second_stage=0.6),
    Degradation(blur=(0.6, 1.5), down=(1.05, 1.4), noise=(1.0, 4.0), quality=(40, 75), second_stage=0.3, kinds=UNSEEN_KINDS),
)
"""easy, medium, hard (training operations, graded strengths) and unseen (other operations, medium strength)."""


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
        raise InputNotFound("no usable fonts under /usr/share/fonts; run scripts/system-deps.sh (Debian font packages)")
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


def _gaussian_kernel(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Isotropic, or (half the time) anisotropic and rotated, normalised Gaussian kernel."""
    sx = sigma
    sy = sigma if rng.random() < 0.5 else sigma * rng.uniform(0.3, 1.0)
    theta = rng.uniform(0, np.pi)
    r = max(1, int(np.ceil(3 * max(sx, sy))))
    ys, xs = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xs + s * ys, -s * xs + c * ys
    k = np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    return (k / k.sum()).astype(np.float32)


def _motion_kernel(rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A line of length ~2.5 sigma at a random angle (camera shake)."""
    length = max(2, int(round(2.5 * sigma)) + 1)
    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    return k / max(float(k.sum()), 1e-6)


def _encode_decode(img: np.ndarray, ext: str, flag: int, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(ext, np.clip(img, 0, 255).astype(np.uint8), [flag, quality])
    if not ok:
        raise TextSRError(f"{ext} encoding failed")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR).astype(np.float32)


def _resize(img: np.ndarray, level: Degradation, rng: np.random.Generator, modes: list[int]) -> np.ndarray:
    factor = rng.uniform(*level.down)
    size = (max(8, int(LR_WIDTH / factor)), max(4, int(LR_HEIGHT / factor)))
    return cv2.resize(img, size, interpolation=modes[int(rng.integers(len(modes)))])


def _apply(kind: str, img: np.ndarray, level: Degradation, rng: np.random.Generator, weak: float) -> np.ndarray:
    """One degradation operation on a float32 BGR/RGB image (channel order does not matter here)."""
    if kind in ("blur", "motion"):
        # sigma is given in HR pixels; scale it to the image's current width
        sigma = rng.uniform(*level.blur) * weak * img.shape[1] / HR_WIDTH
        if sigma < 0.1:
            return img
        kernel = _gaussian_kernel(rng, sigma) if kind == "blur" else _motion_kernel(rng, 2 * sigma)
        return cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if kind == "resize":
        return _resize(img, level, rng, [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC])
    if kind == "resize_nearest":
        return _resize(img, level, rng, [cv2.INTER_NEAREST, cv2.INTER_LANCZOS4])
    if kind == "noise":
        std = rng.uniform(*level.noise) * weak
        shape = img.shape if rng.random() < 0.6 else (*img.shape[:2], 1)  # colour or grey noise
        return img + rng.normal(0, std, shape).astype(np.float32)
    if kind == "poisson":  # shot noise: variance grows with brightness
        scale = rng.uniform(*level.noise) * weak / 8 + 1e-3
        lam = np.clip(img, 0, 255) / 255.0 * (255.0 / scale)
        return rng.poisson(lam).astype(np.float32) * scale
    if kind == "jpeg":
        return _encode_decode(img, ".jpg", cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(*level.quality)))
    if kind == "webp":
        return _encode_decode(img, ".webp", cv2.IMWRITE_WEBP_QUALITY, int(rng.integers(*level.quality)))
    raise ConfigError(f"unknown degradation {kind!r}")


def degrade(hr: np.ndarray, level: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Real-ESRGAN-style degradation of an HR crop into its 16x64 LR twin (RGB uint8).

    Every operation of ``level.kinds`` once per stage in a random order, sometimes a second, weaker
    stage, then a resize to 16x64 with a random kernel.
    """
    img = hr.astype(np.float32)
    stages = 2 if rng.random() < level.second_stage else 1
    for stage in range(stages):
        weak = 1.0 if stage == 0 else 0.5
        for k in rng.permutation(len(level.kinds)):
            img = _apply(level.kinds[int(k)], img, level, rng, weak)
    interp = [cv2.INTER_AREA, cv2.INTER_LINEAR, cv2.INTER_CUBIC][int(rng.integers(3))]
    img = cv2.resize(img, (LR_WIDTH, LR_HEIGHT), interpolation=interp)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


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
        raise TextSRError("PNG encoding failed")
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


def generate(
    out_dir: str | Path, train: int, test: int, seed: int = 0, progress: bool = True, val: int = 0
) -> dict[str, int]:
    """Write train (``train`` samples), val (``val``) and each test split (``test``); returns the counts."""
    counts = {split: test for split in SPLITS if split.startswith("test/")}
    counts = {"train": train, "val": val, **counts}
    for split, n in counts.items():
        if n > 0:
            write_split(out_dir, split, n, seed, progress)
    return counts
