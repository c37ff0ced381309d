"""``textsr upscale IMG... --out DIR``: upscale files in-process (ONNX Runtime) or through a server.

In-process runs the service's own pipeline (:class:`service.local.LocalPipeline`: decode limits,
resize or tile, batching, blending, recognition) on a local model folder without HTTP; ``--server URL`` sends the files to a running service instead.
``--grid`` also writes grid.png: input | bicubic 2x | SR, with recognized text under each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from core.errors import InputNotFound

BATCH = 16


def _chunks(items: list[Path], n: int) -> Iterator[list[Path]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def upscale_files(
    files: list[Path], out_dir: Path, *, server: str | None = None, model_dir: Path | None = None,
    mode: str = "auto", recognize: bool = False, grid: bool = False, api_key: str | None = None,
) -> list[dict]:
    """Write ``<stem>_sr.png`` for each file into ``out_dir``; returns one record per file."""
    import cv2
    from tqdm import tqdm

    from service import images as im
    from service.settings import Settings

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputNotFound(f"no such file(s): {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(**({"model_dir": model_dir} if model_dir else {}), recognition=recognize)
    records, rows = [], []
    with _remote(server, mode, recognize, api_key) if server else _local(settings, mode, recognize) as run:
        with tqdm(total=len(files), unit="img", desc="upscale") as bar:
            for chunk in _chunks(files, BATCH):
                decoded = [im.decode_image(f.read_bytes(), max_pixels=settings.max_image_pixels, field=str(f)) for f in chunk]
                for f, img, (sr, text) in zip(chunk, decoded, run(decoded)):
                    target = out_dir / f"{f.stem}_sr.png"
                    target.write_bytes(im.encode_png(sr, 3))
                    records.append({"input": str(f), "output": str(target), "width": sr.shape[1], "height": sr.shape[0], "text": text})
                    if grid:
                        bic = im.bicubic(img, sr.shape[:2])
                        rows.append([(img, f.name, (0, 0, 0)), (bic, "", (0, 0, 0)), (sr, text or "", (0, 120, 0))])
                bar.update(len(chunk))
    if grid:
        h, w = rows[0][2][0].shape[:2]
        scale = max(1, 256 // max(w, 1))
        picture = im.grid(rows, ["INPUT", "BICUBIC 2x", "SR"], (h * scale, w * scale))
        cv2.imwrite(str(out_dir / "grid.png"), np.ascontiguousarray(picture[..., ::-1]))
    return records


Run = Callable[[list[np.ndarray]], list[tuple[np.ndarray, str | None]]]


@contextmanager
def _remote(server: str, mode: str, recognize: bool, api_key: str | None) -> Iterator[Run]:
    from textsr.client import Client

    client = Client(server, api_key=api_key)
    yield lambda decoded: [(r.image, r.text) for r in client.upscale(decoded, mode=mode, recognize=recognize)]


@contextmanager
def _local(settings, mode: str, recognize: bool) -> Iterator[Run]:
    """The service's own pipeline (service.local.LocalPipeline): same steps, same limits, no HTTP."""
    from service.local import LocalPipeline

    with LocalPipeline(settings) as pipeline:
        yield lambda decoded: [(r.sr, r.text) for r in pipeline.upscale(decoded, mode=mode, recognize=recognize)]
