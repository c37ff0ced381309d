"""Error bodies by protocol: the route that owns a request decides the shape of its errors.

Each router declares its protocol through its route class (:class:`V1Route`, :class:`V2Route`). Every
error of a request, whether raised in a handler, by validation, by routing (404, 405), or refused by a
middleware before routing (401, 503), is rendered by :func:`error_response` in the shape of the
protocol whose route owns the request:

- ``/v1``, health, metrics, playground: ``{"error": {"code", "message", "request_id"}}``;
- KServe v2: ``{"error": "<message>"}``, as Triton and tritonclient expect.

A request no route owns gets the v1 shape. No URL prefix is consulted anywhere.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from service.errors import InvalidOption, ModelNotReady, QueueFull, TextSRError

log = logging.getLogger("textsr.app")


class Protocol:
    """The error body of the app's own API: a code, a message and the request id."""

    name = "v1"

    def error_body(self, code: str, message: str, request_id: str | None) -> dict[str, Any]:
        return {"error": {"code": code, "message": message, **({"request_id": request_id} if request_id else {})}}


class KServeV2(Protocol):
    """KServe v2 / Open Inference Protocol: ``"error"`` is the message string."""

    name = "v2"

    def error_body(self, code: str, message: str, request_id: str | None) -> dict[str, Any]:
        return {"error": message}


V1, V2 = Protocol(), KServeV2()


class V1Route(APIRoute):
    """A route of the app's own API (errors in the v1 shape)."""

    protocol = V1


class V2Route(APIRoute):
    """A KServe v2 route (errors as ``{"error": "<message>"}``)."""

    protocol = V2


def error_docs(model: type, descriptions: dict[int, str]) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, each with the protocol's error body ``model``."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}


def _routes(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes, flat: FastAPI >= 0.16x keeps an included router as one entry (``original_router``)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def owner_route(scope: Scope) -> BaseRoute | None:
    """The route that owns the request: the one routing chose, or, before routing, the one that would.

    A full match (path and method) wins; a partial one (path only: a 405) owns the request otherwise.
    """
    route = scope.get("route")
    if route is not None:
        return route
    app = scope.get("app")
    if app is None:
        return None
    partial = None
    for candidate in _routes(app.router.routes):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return candidate
        if match is Match.PARTIAL and partial is None:
            partial = candidate
    return partial


def protocol_of(scope: Scope) -> Protocol:
    return getattr(owner_route(scope), "protocol", V1)


def request_id(scope: Scope) -> str | None:
    """The id :class:`service.http.middleware.RequestId` gave the request (None outside it)."""
    return scope.get("state", {}).get("request_id")


def error_response(scope: Scope, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error as the owning protocol writes it."""
    body = protocol_of(scope).error_body(code, message, request_id(scope))
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn domain, validation and routing errors into protocol-shaped bodies."""

    @app.exception_handler(TextSRError)
    async def _domain_error(request: Request, exc: TextSRError) -> JSONResponse:
        if exc.status >= 500 and not isinstance(exc, (QueueFull, ModelNotReady)):  # backpressure is expected, not news
            log.warning("%s on %s (request %s): %s", exc.code, request.url.path, request_id(request.scope), exc.message)
        return error_response(request.scope, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        return error_response(request.scope, 422, InvalidOption.code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request.scope, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
