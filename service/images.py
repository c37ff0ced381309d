"""Pure image functions: decode with limits, resize to the model's LR input, tile, blend, encode.

No web framework and no ONNX Runtime here. Limits are checked from the image header before the
pixels are decoded, so a decompression bomb costs a header read, not memory.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidImage, PayloadTooLarge

Image.MAX_IMAGE_PIXELS = None  # we enforce our own, smaller limit from the header


def decode_image(data: bytes, *, max_pixels: int, field: str = "image") -> np.ndarray:
    """Decode PNG/JPEG/WebP/GIF/BMP/TIFF bytes to an RGB uint8 HxWx3 array.

    EXIF orientation is applied; alpha is composited over white; 16-bit images are scaled to
    8 bits; palette, grey and CMYK images are converted. Animated images give their first frame.
    """
    if not data:
        raise InvalidImage(f"{field}: empty file")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidImage(f"{field}: not a decodable image (PNG, JPEG, WebP, GIF, BMP or TIFF expected)") from None
    except Exception as exc:
        raise InvalidImage(f"{field}: cannot read the image header ({exc})") from None
    w, h = img.size
    if w < 1 or h < 1:
        raise InvalidImage(f"{field}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise PayloadTooLarge(f"{field}: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return _to_rgb(img)
    except (InvalidImage, PayloadTooLarge):
        raise
    except Exception as exc:
        raise InvalidImage(f"{field}: truncated or corrupt image data ({type(exc).__name__}: {exc})") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img)
        scale = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr.astype(np.float64) / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "F":
        grey = np.clip(np.asarray(img, np.float64), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"), np.float32)
        alpha = rgba[..., 3:4] / 255.0
        return (rgba[..., :3] * alpha + 255.0 * (1 - alpha) + 0.5).astype(np.uint8)
    return np.asarray(img.convert("RGB"), np.uint8).copy()


def to_lr(img: np.ndarray, lr_size: tuple[int, int]) -> np.ndarray:
    """PaddleOCR's pre-processing: bicubic resize to (h, w) = ``lr_size``, CHW float32 in [0, 1]."""
    h, w = lr_size
    small = cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC)
    return (small.astype(np.float32) / 255.0).transpose(2, 0, 1)


@dataclass(frozen=True)
class TileLayout:
    """Where each window of a long line sits, in LR pixels."""

    starts: tuple[int, ...]
    window: int
    width: int
    height: int
    overlap: int


def tile_count(shape: tuple[int, ...], lr_size: tuple[int, int], overlap: int) -> tuple[int, int]:
    """(windows, line width at the LR height) that mode=tile cuts from an image of ``shape`` (h, w, ...)."""
    h, w = lr_size
    width = max(w, int(round(shape[1] * h / shape[0])))
    return 1 + max(0, -(-(width - w) // (w - overlap))), width


def tile_windows(img: np.ndarray, lr_size: tuple[int, int], overlap: int, max_tiles: int) -> tuple[np.ndarray, TileLayout]:
    """Resize to the LR height keeping the aspect, then cut overlapping windows of the LR width."""
    h, w = lr_size
    count, width = tile_count(img.shape, lr_size, overlap)
    stride = w - overlap
    if count > max_tiles:
        raise PayloadTooLarge(f"mode=tile needs {count} windows for this {img.shape[1]}x{img.shape[0]} image; the limit is {max_tiles}")
    line = to_lr(img, (h, width))
    starts = tuple(min(i * stride, width - w) for i in range(count))
    windows = np.stack([line[:, :, s : s + w] for s in starts])
    return windows, TileLayout(starts, w, width, h, overlap)


def blend_tiles(outputs: list[np.ndarray], layout: TileLayout, scale: int) -> np.ndarray:
    """Stitch upscaled windows with linear cross-fades over their overlaps: CHW float32."""
    c, oh, ow = outputs[0].shape
    acc = np.zeros((c, oh, layout.width * scale), np.float64)
    weight = np.zeros(layout.width * scale, np.float64)
    ramp = np.ones(ow)
    fade = min(layout.overlap * scale, ow // 2)
    if fade:
        up = np.arange(1, fade + 1) / (fade + 1)
        ramp[:fade], ramp[-fade:] = up, up[::-1]
    for out, start in zip(outputs, layout.starts):
        s = start * scale
        acc[:, :, s : s + ow] += out * ramp
        weight[s : s + ow] += ramp
    return (acc / weight).astype(np.float32)


def to_uint8(chw: np.ndarray) -> np.ndarray:
    """CHW float [0, 1] -> HWC RGB uint8 (rounded)."""
    return (np.clip(chw, 0, 1) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def encode_png(rgb: np.ndarray, compression: int = 1) -> bytes:
    """RGB uint8 -> PNG bytes (zlib level ``compression``)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def bicubic(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 bicubic resize to (h, w)."""
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)


AUTO_TILE_RATIO = 1.5
"""``mode=auto`` tiles a crop whose width/height exceeds the model input's by more than this factor
(a 64x16 input is 4:1, so crops wider than 6:1) when its windows fit within the per-image limit;
it resizes the others, as PaddleOCR does."""


def auto_tile_above(lr_size: tuple[int, int]) -> float:
    """The width/height above which ``mode=auto`` tiles, for a model input of ``lr_size`` (h, w)."""
    return AUTO_TILE_RATIO * lr_size[1] / lr_size[0]


def resolve_mode(shape: tuple[int, ...], lr_size: tuple[int, int], mode: str, overlap: int, max_tiles: int) -> str:
    """``resize`` or ``tile`` for an image of ``shape`` (h, w, ...): ``auto`` tiles when the image is far wider than
    the model input and its windows fit within ``max_tiles`` (a 1x5000 strip is resized rather than refused)."""
    if mode != "auto":
        return mode
    wide = shape[1] / shape[0] > auto_tile_above(lr_size)
    return "tile" if wide and tile_count(shape, lr_size, overlap)[0] <= max_tiles else "resize"


def prepare_crops(
    decoded: list[np.ndarray], lr_size: tuple[int, int], mode: str, overlap: int, max_tiles: int
) -> tuple[np.ndarray, list[TileLayout | None], list[int]]:
    """All model inputs of a request: one LR crop per image (``resize``) or its windows (``tile``);
    ``auto`` picks per image (:func:`resolve_mode`).

    Returns the stacked batch, each image's layout (None for resize) and its number of crops.
    """
    crops, layouts = [], []
    for img in decoded:
        if resolve_mode(img.shape, lr_size, mode, overlap, max_tiles) == "tile":
            windows, layout = tile_windows(img, lr_size, overlap, max_tiles)
        else:
            windows, layout = to_lr(img, lr_size)[None], None
        crops.append(windows)
        layouts.append(layout)
    return np.concatenate(crops), layouts, [len(c) for c in crops]


def assemble(outputs: list[np.ndarray], layouts: list[TileLayout | None], counts: list[int], scale: int) -> list[np.ndarray]:
    """Model outputs back to one RGB uint8 image per input (blending tiles)."""
    results, i = [], 0
    for layout, n in zip(layouts, counts):
        part = outputs[i : i + n]
        i += n
        results.append(to_uint8(blend_tiles(part, layout, scale) if layout is not None else part[0]))
    return results


def grid(rows: list[list[tuple[np.ndarray, str, tuple[int, int, int]]]], headers: list[str], cell: tuple[int, int]) -> np.ndarray:
    """A comparison picture: each row a list of (RGB image, caption, caption colour), nearest-scaled to ``cell`` (h, w)."""
    cell_h, cell_w = cell
    text_h, gap = 18, 4
    canvas = np.full((text_h + len(rows) * (cell_h + text_h), len(headers) * (cell_w + gap), 3), 255, np.uint8)
    for c, name in enumerate(headers):
        cv2.putText(canvas, name, (c * (cell_w + gap) + 4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for r, row in enumerate(rows):
        y = text_h + r * (cell_h + text_h)
        for c, (img, caption, colour) in enumerate(row):
            x = c * (cell_w + gap)
            canvas[y : y + cell_h, x : x + cell_w] = cv2.resize(img, (cell_w, cell_h), interpolation=cv2.INTER_NEAREST)
            cv2.putText(canvas, caption[:32], (x + 4, y + cell_h + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return canvas
