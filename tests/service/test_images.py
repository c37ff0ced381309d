"""Decoding every legitimate image kind, refusing bad ones from the header, tiling and blending."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from service.errors import InvalidImage, PayloadTooLarge
from service.images import blend_tiles, decode_image, tile_windows, to_lr

LIMIT = 4_000_000


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_modes_become_rgb():
    rgb = Image.new("RGB", (40, 10), (10, 200, 30))
    cases = {
        "grey": encode(rgb.convert("L"), "PNG"),
        "rgba": encode(rgb.convert("RGBA"), "PNG"),
        "palette": encode(rgb.convert("P"), "PNG"),
        "cmyk-jpeg": encode(rgb.convert("CMYK"), "JPEG"),
        "webp": encode(rgb, "WEBP", lossless=True),
        "gif": encode(rgb.convert("P"), "GIF"),
    }
    for name, data in cases.items():
        out = decode_image(data, max_pixels=LIMIT, field=name)
        assert out.shape == (10, 40, 3) and out.dtype == np.uint8, name


def test_transparent_pixels_are_white():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert (decode_image(encode(img, "PNG"), max_pixels=LIMIT) == 255).all()


def test_sixteen_bit_png_is_scaled():
    arr = np.full((8, 8), 65535 // 2, np.uint16)
    out = decode_image(encode(Image.fromarray(arr), "PNG"), max_pixels=LIMIT)
    assert abs(int(out[0, 0, 0]) - 128) <= 1


# EXIF orientation -> the displayed image from the stored one, as the EXIF 2.32 standard defines the tag
# (where the stored row 0 and column 0 appear: 6 = row 0 on the right, column 0 at the top, i.e. turn clockwise).
DISPLAYED = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],  # mirrored left-right
    3: lambda s: s[::-1, ::-1],  # turned 180
    4: lambda s: s[::-1, :],  # mirrored top-bottom
    5: lambda s: s.transpose(1, 0, 2),  # transposed
    6: lambda s: s.transpose(1, 0, 2)[:, ::-1],  # turned 90 clockwise
    7: lambda s: s.transpose(1, 0, 2)[::-1, ::-1],  # transversed
    8: lambda s: s.transpose(1, 0, 2)[::-1, :],  # turned 90 anticlockwise
}


@pytest.mark.parametrize("orientation", list(DISPLAYED))
def test_exif_orientation_is_applied(orientation):
    """Every pixel of an asymmetric 48x32 JPEG (six 16x16 colour blocks) lands where the EXIF orientation shows it."""
    blocks = np.array([[(230, 20, 20), (20, 230, 20), (20, 20, 230)], [(230, 230, 20), (20, 230, 230), (120, 120, 120)]], np.uint8)
    img = Image.fromarray(np.repeat(np.repeat(blocks, 16, 0), 16, 1))  # 2 x 3 blocks: 32 rows, 48 columns
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = decode_image(encode(img, "JPEG", quality=95), max_pixels=LIMIT)  # the same pixels, no orientation tag
    out = decode_image(encode(img, "JPEG", quality=95, exif=exif), max_pixels=LIMIT)
    np.testing.assert_array_equal(out, DISPLAYED[orientation](stored))
    corner = {1: 0, 2: 2, 3: 5, 4: 3, 5: 0, 6: 3, 7: 5, 8: 2}[orientation]  # the block shown at the top left
    assert np.abs(out[4:12, 4:12].astype(int) - blocks.reshape(6, 3)[corner]).max() <= 8  # its centre (JPEG blurs edges)


def test_bomb_is_refused_from_the_header():
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    with pytest.raises(PayloadTooLarge, match="50000x50000"):
        decode_image(bomb, max_pixels=LIMIT)


@pytest.mark.parametrize("data,match", [(b"", "empty"), (b"\x00garbage" * 10, "not a decodable image")])
def test_undecodable(data, match):
    with pytest.raises(InvalidImage, match=match):
        decode_image(data, max_pixels=LIMIT, field="file[0]")


def test_truncated_png():
    data = encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], max_pixels=LIMIT)


def test_to_lr_shape_and_range():
    x = to_lr(np.full((50, 300, 3), 255, np.uint8), (16, 64))
    assert x.shape == (3, 16, 64) and x.dtype == np.float32 and np.allclose(x, 1.0)


def test_tiles_cover_a_long_line_and_blend_back():
    img = np.random.default_rng(0).integers(0, 256, (16, 400, 3), dtype=np.uint8)
    windows, layout = tile_windows(img, (16, 64), overlap=16, max_tiles=64)
    assert windows.shape[1:] == (3, 16, 64) and layout.width == 400
    assert layout.starts[0] == 0 and layout.starts[-1] == 400 - 64
    # an "upscaler" that is nearest-neighbour 2x must blend back to the 2x line exactly
    ups = [np.repeat(np.repeat(w, 2, axis=1), 2, axis=2) for w in windows]
    line = to_lr(img, (16, 400))
    np.testing.assert_allclose(blend_tiles(ups, layout, 2), np.repeat(np.repeat(line, 2, 1), 2, 2), atol=1e-5)


def test_too_many_tiles():
    with pytest.raises(PayloadTooLarge, match="windows"):
        tile_windows(np.zeros((16, 5000, 3), np.uint8), (16, 64), overlap=16, max_tiles=8)


def test_auto_mode_rule():
    """mode=auto tiles a crop whose aspect exceeds 1.5x the model input's (64x16: above 6:1), resizes the others."""
    from service.images import AUTO_TILE_RATIO, auto_tile_above, resolve_mode

    assert AUTO_TILE_RATIO == 1.5 and auto_tile_above((16, 64)) == 6.0
    rule = {"lr_size": (16, 64), "overlap": 16, "max_tiles": 64}
    assert resolve_mode((16, 96, 3), mode="auto", **rule) == "resize"
    assert resolve_mode((10, 60, 3), mode="auto", **rule) == "resize"  # exactly 6: not above
    assert resolve_mode((10, 61, 3), mode="auto", **rule) == "tile"
    assert resolve_mode((16, 300, 3), mode="auto", **rule) == "tile"
    assert resolve_mode((1, 5000, 3), mode="auto", **rule) == "resize"  # 1667 windows would pass the limit: resized
    assert resolve_mode((16, 300, 3), mode="resize", **rule) == "resize" and resolve_mode((16, 20, 3), mode="tile", **rule) == "tile"
