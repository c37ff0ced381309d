"""Python client for the textsr service, sync and async, on httpx, with retries on overload.

    from textsr.client import Client
    with Client("http://127.0.0.1:8000") as c:
        results = c.upscale(["crop.png"], recognize=True)
        results[0].save("crop_sr.png"); print(results[0].text)

503 (queue full, not ready) and connection errors are retried with exponential backoff,
honouring ``Retry-After``; every other error raises :class:`ServiceError` with the server's
code and message. Images may be paths, bytes or RGB uint8 numpy arrays.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from core.errors import TextSRError

ImageLike = str | Path | bytes | np.ndarray
RETRY_STATUSES = {502, 503, 504}


class ServiceError(TextSRError):
    """The service answered with an error (after retries, for retryable ones)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Result:
    """One image's answer."""

    png: bytes | None
    width: int
    height: int
    text: str | None = None
    confidence: float | None = None
    filename: str | None = None

    @property
    def image(self) -> np.ndarray:
        """The upscaled image as RGB uint8."""
        from PIL import Image

        if self.png is None:
            raise ValueError("this result carries no image (a /v1/recognize result)")
        return np.asarray(Image.open(io.BytesIO(self.png)).convert("RGB"))

    def save(self, path: str | Path) -> Path:
        if self.png is None:
            raise ValueError("this result carries no image")
        Path(path).write_bytes(self.png)
        return Path(path)


def _encode(image: ImageLike, index: int) -> tuple[str, bytes]:
    if isinstance(image, (str, Path)):
        p = Path(image)
        return p.name, p.read_bytes()
    if isinstance(image, bytes):
        return f"image{index}.png", image
    if isinstance(image, np.ndarray):
        import cv2

        ok, buf = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]) if image.ndim == 3 else image)
        if not ok:
            raise ValueError(f"cannot encode image {index} of shape {image.shape}")
        return f"image{index}.png", buf.tobytes()
    raise TypeError(f"image {index}: expected a path, bytes or numpy array, got {type(image).__name__}")


def _files(images: Iterable[ImageLike]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (name, data, "application/octet-stream")) for name, data in (_encode(im, i) for i, im in enumerate(images))]


def _parse(response: httpx.Response) -> list[Result]:
    if response.status_code != 200:
        _raise(response)
    return [
        Result(
            png=base64.b64decode(r["image"]) if r.get("image") else None,
            width=r["width"], height=r["height"], text=r.get("text"), confidence=r.get("confidence"), filename=r.get("filename"),
        )
        for r in response.json()["results"]
    ]


def _raise(response: httpx.Response) -> None:
    try:
        err = response.json()["error"]
        code, message = (err["code"], err["message"]) if isinstance(err, dict) else ("error", str(err))
    except Exception:
        code, message = "http_error", response.text[:200]
    raise ServiceError(response.status_code, code, message)


def _delay(attempt: int, backoff: float, response: httpx.Response | None) -> float:
    retry_after = response.headers.get("retry-after") if response is not None else None
    base = float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit() else backoff * 2**attempt
    return base * (0.5 + random.random())  # jitter so that many clients do not retry in step


class _Base:
    def __init__(self, url: str, api_key: str | None, timeout: float, retries: int, backoff: float) -> None:
        self.url, self.retries, self.backoff = url.rstrip("/"), retries, backoff
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.timeout = timeout

    def _verdict(self, attempt: int, response: httpx.Response | None, error: Exception | None) -> float | None:
        """None: use this outcome; a number: retry after that many seconds (503, 502, 504, connection errors)."""
        if attempt >= self.retries:
            if error is not None:
                raise error
            return None
        if error is not None:
            return _delay(attempt, self.backoff, None)
        return _delay(attempt, self.backoff, response) if response.status_code in RETRY_STATUSES else None

    def _params(self, **kw: Any) -> dict[str, str]:
        return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in kw.items() if v is not None}


class Client(_Base):
    """Synchronous client."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 4, backoff: float = 0.25) -> None:
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, images: Iterable[ImageLike], params: dict[str, str]) -> httpx.Response:
        files = _files(images)
        for attempt in itertools.count():
            response, error = None, None
            try:
                response = self._http.post(path, files=files, params=params)
            except httpx.TransportError as exc:
                error = exc
            wait = self._verdict(attempt, response, error)
            if wait is None:
                return response
            time.sleep(wait)
        raise AssertionError("unreachable")

    def upscale(self, images: Iterable[ImageLike], mode: str = "auto", recognize: bool = False, model: str | None = None) -> list[Result]:
        """Upscale images 2x; ``mode`` auto (tile far wider crops, resize the others), resize or tile; ``recognize`` adds text."""
        return _parse(self._post("/v1/upscale", images, self._params(mode=mode, recognize=recognize, model=model)))

    def recognize(self, images: Iterable[ImageLike], source: str = "sr", model: str | None = None) -> list[Result]:
        """Text of images, read on the SR image (``sr``) or the raw crop (``raw``)."""
        return _parse(self._post("/v1/recognize", images, self._params(source=source, model=model)))

    def models(self) -> dict[str, Any]:
        r = self._http.get("/v1/models")
        if r.status_code != 200:
            _raise(r)
        return r.json()

    def ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False


class AsyncClient(_Base):
    """Asynchronous client (same methods, awaitable)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0, retries: int = 4, backoff: float = 0.25) -> None:
        super().__init__(url, api_key, timeout, retries, backoff)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, images: Iterable[ImageLike], params: dict[str, str]) -> httpx.Response:
        files = _files(images)
        for attempt in itertools.count():
            response, error = None, None
            try:
                response = await self._http.post(path, files=files, params=params)
            except httpx.TransportError as exc:
                error = exc
            wait = self._verdict(attempt, response, error)
            if wait is None:
                return response
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def upscale(self, images: Iterable[ImageLike], mode: str = "auto", recognize: bool = False, model: str | None = None) -> list[Result]:
        return _parse(await self._post("/v1/upscale", images, self._params(mode=mode, recognize=recognize, model=model)))

    async def recognize(self, images: Iterable[ImageLike], source: str = "sr", model: str | None = None) -> list[Result]:
        return _parse(await self._post("/v1/recognize", images, self._params(source=source, model=model)))

    async def models(self) -> dict[str, Any]:
        r = await self._http.get("/v1/models")
        if r.status_code != 200:
            _raise(r)
        return r.json()

    async def ready(self) -> bool:
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False
