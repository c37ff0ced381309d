"""The app's middleware, one job each, as plain ASGI classes (no per-request task or body copying).

From the outside in (``service.http.app.create_app`` stacks them): :class:`RequestId`,
:class:`MetricsAndAccessLog`, :class:`ErrorEnvelope`, (CORS when configured), :class:`Authentication`,
:class:`AdmissionControl`. Refusals and the 500 envelope take their shape from the route that owns the
request (``service.http.protocols``).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection

from prometheus_client import Counter, Gauge, Histogram
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import QueueFull, Unauthorized
from service.http.protocols import error_response, owner_route, request_id

log = logging.getLogger("textsr.app")
access = logging.getLogger("textsr.access")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
"""A client's X-Request-ID is kept when it matches this (log-safe); otherwise the server makes one."""


class HTTPMiddleware:
    """Passes lifespan and websocket traffic through untouched; subclasses ``handle`` HTTP requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestId(HTTPMiddleware):
    """Gives every request an id, the client's ``X-Request-ID`` when well formed, and echoes it on the response."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


def endpoint(route: object) -> str:
    """The metrics label of a route: its path template (``/v2/models/{name}/infer``), or ``unmatched``."""
    return getattr(route, "path", None) or "unmatched"


class MetricsAndAccessLog(HTTPMiddleware):
    """Counts each response by route template and status, observes its latency, logs one access line, and sets
    ``Server-Timing`` (the server's time until the response headers)."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        super().__init__(app)
        self.requests, self.latency = requests, latency

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        before_routing = dict(scope)  # routing rewrites the scope (root_path, route); match on the original
        status = 500

        async def send_timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["Server-Timing"] = f"app;dur={1000 * (time.perf_counter() - start):.1f}"
            await send(message)

        try:
            await self.app(scope, receive, send_timed)
        finally:
            elapsed = time.perf_counter() - start
            name = endpoint(scope.get("route") or owner_route(before_routing))
            self.requests.labels(name, str(status)).inc()
            self.latency.labels(name).observe(elapsed)
            access.info("%s %s %s %d %.1fms", request_id(scope), scope["method"], scope["path"], status, 1000 * elapsed)


class ErrorEnvelope(HTTPMiddleware):
    """Turns an exception no handler took into a 500 in the owning protocol's shape, logged with the request
    id; the client never sees a traceback, and the process keeps serving."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        before_routing = dict(scope)
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", scope["method"], scope["path"], request_id(scope))
            if started:  # the status line is out: nothing left to say but to drop the connection
                raise
            await error_response(before_routing, 500, "internal_error", "internal server error")(scope, receive, send)


class Authentication(HTTPMiddleware):
    """Requires the API key, as ``X-API-Key`` or ``Authorization: Bearer``, compared in constant time, on every
    path except the open ones (health probes, playground, API docs, static files); 401 otherwise."""

    def __init__(self, app: ASGIApp, key: str, open_paths: Collection[str], open_prefixes: tuple[str, ...]) -> None:
        super().__init__(app)
        self.key, self.open_paths, self.open_prefixes = key.encode(), frozenset(open_paths), open_prefixes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), self.key):
            await self.app(scope, receive, send)
            return
        message = "missing or wrong API key (X-API-Key or Authorization: Bearer)"
        response = error_response(scope, 401, Unauthorized.code, message, {"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class AdmissionControl(HTTPMiddleware):
    """Caps the requests that carry work (``is_work``: images or tensors) in flight, before their bodies are read:
    beyond ``limit`` a 503 with ``Retry-After``, so overload costs a header parse, not a decode."""

    def __init__(self, app: ASGIApp, limit: int, is_work: Callable[[Scope], bool], gauge: Gauge) -> None:
        super().__init__(app)
        self.limit, self.is_work, self.in_flight = limit, is_work, 0
        gauge.set_function(lambda: self.in_flight)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.is_work(scope):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            message = f"{self.in_flight} requests in flight, the limit is {self.limit}; retry shortly"
            await error_response(scope, 503, QueueFull.code, message, {"Retry-After": "1"})(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
