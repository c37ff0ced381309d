"""Reading TextZoom-layout LMDBs (real TextZoom or ``textsr gen-data`` output) like PaddleOCR does.

Keys: ``num-samples`` and, for i = 1..N, ``image_hr-%09d``, ``image_lr-%09d`` (encoded images)
and ``label-%09d``. Each pair is resized as PaddleOCR's ``SRResize``: HR to 128x32 and LR to
64x16, bicubic, then scaled to float [0, 1] CHW RGB.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import DataError, InputNotFound
from core.spec import HR_HEIGHT, HR_WIDTH, SCALE

_ENVS: dict[str, object] = {}
"""Open read-only environments by path: lmdb refuses to open one environment twice in a process."""


def _open(path: Path):
    import lmdb

    key = str(path.resolve())
    if key not in _ENVS:
        _ENVS[key] = lmdb.open(key, readonly=True, lock=False, readahead=False, meminit=False, max_readers=32)
    return _ENVS[key]


def _decode(buf: bytes, size: tuple[int, int]) -> np.ndarray:
    img = Image.open(io.BytesIO(buf)).convert("RGB").resize(size, Image.BICUBIC)
    return np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0


def find_lmdbs(root: str | Path) -> list[Path]:
    """Every LMDB (a folder with ``data.mdb``) at or below ``root``, sorted: one split each."""
    root = Path(root)
    found = sorted({p.parent for p in root.rglob("data.mdb")})
    if not found:
        raise InputNotFound(f"no LMDB (data.mdb) at or below {root}")
    return found


class LMDBDataSetSR:
    """Random access to one TextZoom LMDB: ``ds[i] -> (lr [3,16,64], hr [3,32,128], label)``."""

    def __init__(self, data_dir: str | Path, img_h: int = HR_HEIGHT, img_w: int = HR_WIDTH, down_sample_scale: int = SCALE) -> None:
        self.path = Path(data_dir)
        if not (self.path / "data.mdb").is_file():
            raise InputNotFound(f"{self.path} is not an LMDB folder (no data.mdb)")
        self.env = _open(self.path)
        with self.env.begin() as txn:
            raw = txn.get(b"num-samples")
        if raw is None:
            raise DataError(f"{self.path}: no 'num-samples' key; not a TextZoom LMDB")
        self.count = int(raw.decode("ascii"))
        self.hr_size = (img_w, img_h)
        self.lr_size = (img_w // down_sample_scale, img_h // down_sample_scale)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} samples")
        i = index + 1
        with self.env.begin() as txn:
            hr, lr, label = (txn.get(k % i) for k in (b"image_hr-%09d", b"image_lr-%09d", b"label-%09d"))
        if hr is None or lr is None or label is None:
            raise KeyError(f"{self.path}: sample {i} is incomplete")
        return _decode(lr, self.lr_size), _decode(hr, self.hr_size), label.decode("utf-8")

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False, epoch: int = 0):
        """Yield ``(lr [B,3,16,64], hr [B,3,32,128], labels)`` numpy batches; the order depends only on seed and epoch."""
        order = np.arange(self.count)
        if shuffle:
            np.random.default_rng([seed, epoch]).shuffle(order)
        stop = self.count - (self.count % batch_size if drop_last else 0)
        for start in range(0, stop, batch_size):
            items = [self[int(j)] for j in order[start : start + batch_size]]
            yield np.stack([a for a, _, _ in items]), np.stack([b for _, b, _ in items]), [c for _, _, c in items]
