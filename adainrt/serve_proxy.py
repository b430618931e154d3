"""What runs in Ray Serve's HTTP proxy, the one layer in front of the FastAPI app: JSON errors and
the body limit.

**Errors.**
The app answers every error it makes as ``{"error": "..."}``. A few errors are the proxy's own:
a replica killed (``kill -9``, out of memory, a lost node) while it held a request; the proxy's
timeouts and back-pressure (408, 429, 503). Ray Serve's proxy writes those as plain text, or, for
a dead replica, sends nothing and leaves uvicorn to write a bare "Internal Server Error". A client
that parses the JSON error of every other failure then fails on these.

**Body limit.** The proxy reads a request body as fast as the client sends it and queues it for the
replica, whether or not the app reads it: a 300 MB chunked body went into the proxy's and the
replica's memory (+438 and +313 MB) before the app's 413 reached the client, which had pushed
214 MB by then. :class:`BodyLimit` counts the bytes as the proxy reads them and, past the
server's ``--max-body-mb``, stops reading until the app has answered (its 413, or the 401 it gives
before reading any body); the app's checks stay the only ones that decide the answer.

:func:`middlewares` is the hook Ray Serve's proxy reads from ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
(``adainrt.serve_proxy:middlewares``), with the limit in ``ADAINRT_PROXY_MAX_BODY_BYTES``: `adainrt
serve` sets both for the Ray it starts; a cluster's nodes need them in their environment when
``ray start`` runs (the README says how). This module is imported inside the proxy's process, so it
needs nothing beyond Starlette.
"""

from __future__ import annotations

import json
import os
from typing import Any

#: The import path Ray Serve's proxy calls for its middlewares.
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "adainrt.serve_proxy:middlewares"
#: The body limit in bytes the proxy enforces (unset: none there, the app's alone).
LIMIT_ENV = "ADAINRT_PROXY_MAX_BODY_BYTES"

#: Said when a request ends with no answer at all: the replica holding it went away mid-request.
NO_ANSWER = ("the server lost this request before answering it (the replica running it stopped or was "
             "killed); it is restarting: retry the request")


def json_error(status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> list[dict[str, Any]]:
    """The ASGI messages of ``{"error": message}`` with ``status``, keeping extra headers (Retry-After)."""
    body = json.dumps({"error": message}).encode()
    kept = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
    return [{"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         *kept]},
            {"type": "http.response.body", "body": body, "more_body": False}]


class JsonErrors:
    """ASGI middleware: an error answer that is not JSON becomes ``{"error": <its text>}`` with the
    same status, and a request that ends unanswered gets a JSON 500 saying so. Bodies of other
    answers pass through unbuffered (an error answer is short; only it is held)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: dict[str, Any] | None = None  # the start of a plain-text error, until its body is in
        text = bytearray()

        async def relay(message: dict) -> None:
            nonlocal started, held
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400 and not _is_json(message.get("headers", [])):
                    held = message
                    return
            elif message["type"] == "http.response.body" and held is not None:
                text.extend(message.get("body", b""))
                if message.get("more_body", False):
                    return
                reason = text.decode("utf-8", "replace").strip() or f"HTTP {held['status']}"
                for part in json_error(held["status"], reason, list(held.get("headers", []))):
                    await send(part)
                return
            await send(message)

        try:
            await self.app(scope, receive, relay)
        except Exception:
            if started:
                raise
        if not started:
            for part in json_error(500, NO_ANSWER):
                await send(part)


def body_too_large(max_bytes: int) -> str:
    """The 413 message of a body counted past the limit (the proxy's and the app's)."""
    return f"body of more than {max_bytes} bytes is above the limit of {max_bytes}"


class BodyLimit:
    """ASGI middleware: count the body's bytes as they are read; past ``max_bytes``, stop reading and
    wait for the app's answer (it counts too and answers 413, or has answered already: a 401 before
    any body), so no more than the limit is read or queued for the replica. If no answer starts
    within ``wait_s``, answer 413 here and drop the app's later messages for the request."""

    def __init__(self, app: Any, max_bytes: int, wait_s: float = 10.0):
        self.app, self.max_bytes, self.wait_s = app, max_bytes, wait_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import asyncio

        seen, answered = 0, False
        started = asyncio.Event()

        async def counted() -> dict:
            nonlocal seen, answered
            if seen > self.max_bytes:  # the message past the limit went through; read nothing more
                try:
                    await asyncio.wait_for(started.wait(), self.wait_s)
                except asyncio.TimeoutError:
                    answered = True
                    for part in json_error(413, body_too_large(self.max_bytes)):
                        await send(part)
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
            return message

        async def relay(message: dict) -> None:
            if answered:
                return
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        await self.app(scope, counted, relay)


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"json" in v.lower() for k, v in headers)


def middlewares() -> list[Any]:
    """Ray Serve's proxy callback: the middlewares its HTTP server wraps the proxy in (JSON errors
    outermost, so the limit's 413 and everything else pass through it)."""
    from starlette.middleware import Middleware

    limit = os.environ.get(LIMIT_ENV, "")
    return [Middleware(JsonErrors), *([Middleware(BodyLimit, max_bytes=int(limit))] if limit.isdigit() else [])]
