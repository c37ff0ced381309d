"""Reading request bodies within the limits: the body itself, and the images it carries.

Sizes are refused from Content-Length before reading where the client declares it, and while
reading otherwise; multipart part counts are capped by the parser; JSON bodies are validated
by the schema. Every refusal is a TextSRError naming the field or part at fault.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

import numpy as np
from fastapi import Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service import images
from service.errors import InvalidImage, InvalidOption, InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from service.http.schemas import UpscaleJSON
from service.settings import Settings

FORM_FIELDS = {"file"}


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing more than ``limit`` bytes before reading them where Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    return body


async def read_images(request: Request, settings: Settings) -> tuple[list[tuple[str | None, bytes]], dict[str, Any]]:
    """The request's images, as (filename, bytes), and any options given in a JSON body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_body(request, settings.max_body_bytes)
    limit = settings.max_crops_per_request
    if ctype == "multipart/form-data":  # splitting up to max_body_bytes into parts is CPU work: off the loop
        try:
            items = await run_in_threadpool(_split_multipart, request.headers, body, limit)
        except MultiPartException as exc:
            if "Too many files" in exc.message:
                raise PayloadTooLarge(f"more than {limit} files in one request") from None
            raise InvalidRequest(f"malformed multipart body: {exc.message}") from None
        unexpected = sorted({name for name, _, _ in items if name not in FORM_FIELDS})
        if unexpected:
            raise InvalidRequest(f"unexpected form field(s) {unexpected}; send images as 'file' parts and options as query parameters")
        files = [(filename, data) for _, filename, data in items if isinstance(data, bytes)]
        if len(files) != len(items):
            raise InvalidRequest("every 'file' part must be a file upload")
        if not files:
            raise InvalidRequest("multipart body has no 'file' part")
        return files, {}
    if ctype == "application/json":  # parsing up to max_body_bytes of JSON and base64 is CPU work: off the loop
        return await run_in_threadpool(_read_json, body, limit)
    if ctype.startswith("image/"):
        return [(None, body)], {}
    raise UnsupportedMediaType(
        f"Content-Type {ctype or '(none)'!r} is not accepted: send multipart/form-data with 'file' parts, "
        "application/json with base64 'images', or one image as an image/* body"
    )


def _split_multipart(headers: Headers, body: bytes, max_files: int) -> list[tuple[str, str | None, bytes | str]]:
    """The parts of a multipart body as ``(field, filename, data)``: bytes for file uploads, str for plain fields.

    Runs Starlette's parser (python-multipart) on its own event loop in the calling worker thread, so the
    request's loop never splits a body; part counts are capped by the parser (``MultiPartException``).
    """

    async def split() -> list[tuple[str, str | None, bytes | str]]:
        async def chunks():
            yield body

        form = await MultiPartParser(headers, chunks(), max_files=max_files, max_fields=16).parse()
        try:
            return [
                (name, value.filename, await value.read()) if isinstance(value, UploadFile) else (name, None, value)
                for name, value in form.multi_items()
            ]
        finally:
            await form.close()

    return asyncio.run(split())


def _read_json(body: bytes, limit: int) -> tuple[list[tuple[str | None, bytes]], dict[str, Any]]:
    try:
        doc = UpscaleJSON.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidOption(f"JSON body: {where}: {first['msg']}") from None
    if len(doc.images) > limit:
        raise PayloadTooLarge(f"{len(doc.images)} images in one request; the limit is {limit}")
    files = []
    for i, text in enumerate(doc.images):
        raw = text.split(",", 1)[1] if text.startswith("data:") else text
        try:
            files.append((None, base64.b64decode(raw, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidImage(f"images[{i}]: not valid base64") from None
    return files, doc.model_dump(exclude_none=True, exclude={"images"})


def decode_all(files: list[tuple[str | None, bytes]], max_pixels: int) -> list[np.ndarray]:
    return [
        images.decode_image(data, max_pixels=max_pixels, field=f"file[{i}]" + (f" ({name})" if name else ""))
        for i, (name, data) in enumerate(files)
    ]
