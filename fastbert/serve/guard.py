"""The ASGI middleware in front of the app (as TEI's tower layers): the API key (the health routes, /metrics
and the API docs stay public), CORS, ``Content-Type: application/json`` on the JSON routes, the payload
limit, and an inference request's first slot (its route takes one more per further input, as TEI takes a
permit per input: ``Server.admit``); and a request cut by the end of a graceful shutdown is answered 503
with TEI's body (no traceback). A request that finds every ``--max-concurrent-requests`` slot taken takes
none and is marked; its route counts it and answers 429 at TEI's point (``Server.admit``), before
tokenizing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from .errors import error_body

#: keys of an inference request's ASGI scope: the slots it holds, and that it found none free
SLOTS = "fastbert.slots"
OVERLOADED = "fastbert.overloaded"
OPENAI_PATHS = ("/v1/embeddings", "/embeddings")
INFERENCE_PATHS = frozenset(
    (
        "/",
        "/invocations",
        "/embed",
        "/embed_all",
        "/embed_sparse",
        "/predict",
        "/rerank",
        "/similarity",
        "/vertex",
        *OPENAI_PATHS,
    )
)
#: the routes whose body is JSON
JSON_POSTS = INFERENCE_PATHS | {"/tokenize", "/decode"}
#: what TEI leaves outside its API-key layer (``GET`` / ``HEAD`` only; ``POST /`` needs the key): the health
#: routes, Prometheus' /metrics and the API docs
PUBLIC_GETS = frozenset(
    (
        "/health",
        "/",
        "/ping",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/api-doc/openapi.json",
        "/openapi.json",
    )
)


class Guard:
    """ASGI middleware in front of the app: API key (every route but /health) and the payload limit."""

    def __init__(self, app: Any, server: Any) -> None:  # server: fastbert.serve.app.Server
        self.app = app
        self.server = server
        key = server.options.api_key
        self.expected = f"Bearer {key}".encode() if key else None
        origins = server.options.cors_allow_origin
        self.origins = None if origins is None or "*" in origins else {o.encode() for o in origins}

    def _allowed_origin(self, origin: bytes | None) -> bytes | None:
        """The ``access-control-allow-origin`` value for a request from ``origin`` (TEI's CORS layer: any
        origin by default, else those of ``--cors-allow-origin``); None: no CORS header."""
        if origin is None:
            return None
        if self.origins is None:
            return b"*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._http(scope, receive, tracked)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs when the graceful shutdown's wait ends (its timeout, or a
            # second Ctrl-C); answered here, the request gets TEI's 503 instead of a plain-text 500, and
            # the log a traceback less. Any other cancellation (Ray Serve's, a client gone) propagates.
            if not self.server.stopping:
                raise
            if not started:
                message = (
                    "the server is shutting down and stopped before answering this request "
                    "(--graceful-shutdown-timeout passed, or a second Ctrl-C came)"
                )
                await self._answer(send, 503, "unhealthy", message, scope)

    async def _http(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        allow = self._allowed_origin(headers.get(b"origin"))
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            return await self._preflight(send, allow)  # before the key: a browser's preflight carries none
        if allow is not None:
            send = with_cors(send, allow, self.origins is not None)
        public = scope["path"] == "/health" or (
            scope["method"] in ("GET", "HEAD") and scope["path"] in PUBLIC_GETS
        )

        if self.expected is not None and not public:
            if headers.get(b"authorization") != self.expected:
                return await self._answer(
                    send, 401, "unauthorized", "missing or wrong `Authorization: Bearer` key", scope
                )
        if scope["method"] == "POST" and scope["path"] in JSON_POSTS:
            if not is_json(headers.get(b"content-type")):
                # axum's Json extractor (TEI) answers 415 to a body of another type
                return await self._answer(
                    send, 415, "validation", "Expected request with `Content-Type: application/json`", scope
                )
        limit = self.server.options.payload_limit
        declared = headers.get(b"content-length")
        too_large = declared is not None and declared.isdigit() and int(declared) > limit
        body = bytearray()
        more = True
        while more and not too_large:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            too_large = len(body) > limit
        if too_large:
            # read (and drop) the rest, so that the client can read the answer
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                more = message.get("more_body", False)
            # a body sent in chunks declares no size: what was read when the limit tripped is not it
            size = f"of {int(declared)} bytes " if declared is not None and declared.isdigit() else ""
            return await self._answer(
                send,
                413,
                "validation",
                f"request body {size}is more than the payload limit of {limit} bytes (--payload-limit)",
                scope,
            )
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        if scope["method"] != "POST" or scope["path"] not in INFERENCE_PATHS:
            return await self.app(scope, replay, send)
        # an inference request takes a slot; without one its route counts it and answers 429 (as TEI:
        # te_request_count, then the permit), before any tokenizing or forward
        server, m = self.server, self.server.metrics
        scope[OVERLOADED] = not server.take_slots(scope)
        start = time.perf_counter()
        status = 0

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, replay, send_status)
        finally:
            server.release_slots(scope)
            if status == 200:
                m.request_duration.observe(time.perf_counter() - start)

    async def _preflight(self, send: Any, allow: bytes | None) -> None:
        """A CORS preflight: 200, with the allow headers when the origin is allowed (TEI: GET and POST,
        the content-type header; and authorization here, for --api-key)."""
        headers = [(b"content-length", b"0")]
        if allow is not None:
            headers += [
                (b"access-control-allow-origin", allow),
                (b"access-control-allow-methods", b"GET,POST"),
                (b"access-control-allow-headers", b"content-type,authorization"),
            ]
        headers.append((b"vary", b"origin, access-control-request-method, access-control-request-headers"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _answer(send: Any, status: int, error_type: str, message: str, scope: dict) -> None:
        body = json.dumps(error_body(message, error_type, status, scope["path"] in OPENAI_PATHS)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def is_json(content_type: bytes | None) -> bool:
    """Whether a Content-Type header says JSON (``application/json``, ``application/*+json``, parameters
    such as ``; charset=utf-8`` allowed), as axum's Json extractor reads it."""
    if not content_type:
        return False
    essence = content_type.split(b";", 1)[0].strip().lower()
    return essence == b"application/json" or (
        essence.startswith(b"application/") and essence.endswith(b"+json")
    )


def with_cors(send: Any, allow: bytes, vary: bool) -> Any:
    """``send`` adding ``access-control-allow-origin`` (and ``vary: origin`` when it depends on the origin)."""

    async def cors_send(message: dict) -> None:
        if message["type"] == "http.response.start":
            extra = [(b"access-control-allow-origin", allow)]
            if vary:
                extra.append((b"vary", b"origin"))
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return cors_send
