"""JSON errors from Ray Serve's HTTP proxy, the one layer in front of the FastAPI app.

The app answers every error it makes as ``{"error": "..."}``. A few errors are the proxy's own:
a replica killed (``kill -9``, out of memory, a lost node) while it held a request; the proxy's
timeouts and back-pressure (408, 429, 503). Ray Serve's proxy writes those as plain text, or, for
a dead replica, sends nothing and leaves uvicorn to write a bare "Internal Server Error". A client
that parses the JSON error of every other failure then fails on these.

:func:`middlewares` is the hook Ray Serve's proxy reads from ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``
(``adainrt.proxy_errors:middlewares``): `adainrt serve` sets it for the Ray it starts; a cluster's
nodes need it in their environment when ``ray start`` runs (the README says how). This module is
imported inside the proxy's process, so it needs nothing beyond Starlette.
"""

from __future__ import annotations

import json
from typing import Any

#: The import path Ray Serve's proxy calls for its middlewares.
CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
CALLBACK = "adainrt.proxy_errors:middlewares"

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


def _is_json(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"json" in v.lower() for k, v in headers)


def middlewares() -> list[Any]:
    """Ray Serve's proxy callback: the middlewares its HTTP server wraps the proxy in."""
    from starlette.middleware import Middleware

    return [Middleware(JsonErrors)]
