"""`adainrt serve`: stylization over HTTP on Ray Serve, from one machine to a Ray cluster.

Each replica holds one :class:`~adainrt.runtime.Stylizer` (graphs loaded once) and reads the
style bank; a bank style's statistics are loaded once per replica. Requests are plain HTTP:
image bytes in, PNG (or JPEG) out, errors as ``{"error": "..."}`` with the status that fits.
A bad request never takes a replica down: every failure becomes a response.

Stylize requests are batched across clients (Ray Serve's ``@serve.batch``): the requests that
arrive together run as one encoder and one decoder run per content size, each with its own style
and alpha (the decoder takes them per item); the inference runs off the event loop, so the next
batch gathers while one runs.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import hmac
import io
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adainrt.errors import AdainrtError, BackendUnavailable, ImageError, ModelError, OutputExists, OutputUnwritable

#: The replica that answered, for clients and tests that look at load spreading.
REPLICA_HEADER = "X-Adainrt-Replica"
#: How many stylize requests shared the run that answered this one.
BATCH_HEADER = "X-Adainrt-Batch"


@dataclass(frozen=True)
class ServeSettings:
    model_dir: str
    backend: str = "auto"
    max_pixels: int = 2048 * 2048
    max_body_bytes: int = 50 << 20
    api_key: str | None = None
    bank_dir: str | None = None
    #: Most stylize requests run together, and how long the first waits for others (seconds).
    max_batch: int = 8
    batch_wait_s: float = 0.01


@dataclass
class Reply:
    """One HTTP response: status, content type, body; ``batch``: requests in its stylize run."""

    status: int
    content_type: str
    body: bytes
    batch: int | None = None

    @classmethod
    def json(cls, status: int, value: Any) -> Reply:
        return cls(status, "application/json", json.dumps(value).encode())

    @classmethod
    def error(cls, exc: Exception) -> Reply:
        return cls.json(status_of(exc), {"error": str(exc)})


@dataclass(frozen=True)
class Call:
    """One HTTP request as the app sees it (any framework's request maps to this)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def status_of(exc: Exception) -> int:
    """The HTTP status of a library error: the client's fault (4xx) or the server's (500)."""
    from adainrt.runtime.style_bank import StyleBankError

    if isinstance(exc, HttpError):
        return exc.status
    if isinstance(exc, OutputExists):
        return 409
    if isinstance(exc, StyleBankError) and "no style named" in str(exc):
        return 404
    if isinstance(exc, BackendUnavailable):
        return 503
    if isinstance(exc, ModelError | OutputUnwritable):
        return 500
    return 400 if isinstance(exc, AdainrtError | ValueError) else 500


def multipart_parts(body: bytes, content_type: str) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body (the standard library's MIME parser)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    if not message.is_multipart():
        raise HttpError(400, "expected a multipart/form-data body with 'content' and 'style' parts")
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            parts[name] = part.get_payload(decode=True) or b""
    return parts


class StylizeApp:
    """The HTTP API over one Stylizer; framework-free (``handle`` takes method, path, query, headers,
    body), so Ray Serve's deployment below is a thin shell around it."""

    def __init__(self, settings: ServeSettings):
        from adainrt.runtime import Stylizer
        from adainrt.runtime.style_bank import StyleBank

        self.settings = settings
        self.stylizer = Stylizer(settings.model_dir, settings.backend, max_pixels=settings.max_pixels)
        self.bank = StyleBank(settings.bank_dir)
        self.bank_stats: dict[str, tuple[float, Any]] = {}  # name -> (file mtime, statistics)
        self._lock = threading.Lock()  # one thread at a time in the Stylizer (runners, style cache)

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
               ) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request; never raises."""
        reply = self.handle_many([Call(method, path, query, headers, body)])[0]
        return reply.status, reply.content_type, reply.body

    def handle_many(self, calls: Sequence[Call]) -> list[Reply]:
        """One reply per call, in order; never raises. The stylize calls among them run as one
        batch (:meth:`Stylizer.stylize_many`); a bad call fails alone. Thread-safe: decoding and
        checking run in parallel, the Stylizer one batch at a time."""
        replies: list[Reply | None] = []
        pending: list[tuple[int, Any, bool]] = []  # (index, StylizeRequest, jpeg)
        for index, call in enumerate(calls):
            try:
                routed = self._route(call.method, call.path, call.query,
                                     {k.lower(): v for k, v in call.headers.items()}, call.body)
            except Exception as exc:  # every failure is a response: a bad request must not take the replica down
                routed = Reply.error(exc)
            if not isinstance(routed, Reply):
                pending.append((index, *routed))
            replies.append(routed if isinstance(routed, Reply) else None)
        for index, reply in self._run_batch(pending):
            replies[index] = reply
        return replies  # type: ignore[return-value]  # every slot is filled

    def _run_batch(self, pending: list[tuple[int, Any, bool]]) -> list[tuple[int, Reply]]:
        if not pending:
            return []
        try:
            with self._lock:
                images = self.stylizer.stylize_many([request for _i, request, _jpeg in pending])
        except Exception as exc:
            if len(pending) == 1:
                return [(pending[0][0], Reply.error(exc))]
            return [done for one in pending for done in self._run_batch([one])]  # so a bad request fails alone
        return [(index, encoded(image, jpeg, len(pending)))
                for (index, _request, jpeg), image in zip(pending, images, strict=True)]

    def _route(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
               ) -> Reply | tuple[Any, bool]:
        """A reply, or for a stylize call the checked request to run in the batch (and whether JPEG)."""
        if path == "/healthz" and method == "GET":
            return Reply.json(200, {"status": "ok", "backend": self.stylizer.backend})
        self._authorize(headers)
        if len(body) > self.settings.max_body_bytes:
            raise HttpError(413, f"body of {len(body)} bytes is above the limit of {self.settings.max_body_bytes}")
        if path == "/v1/styles" and method == "GET":
            return Reply.json(200, self.bank.names())
        if path.startswith("/v1/styles/") and method == "POST":
            return self._add_style(path.removeprefix("/v1/styles/"), query, body)
        if path == "/v1/stylize" and method == "POST":
            return self._stylize_request(query, headers, body), "image/jpeg" in headers.get("accept", "")
        known = {"/healthz", "/v1/styles", "/v1/stylize"}
        raise HttpError(405 if path in known or path.startswith("/v1/styles/") else 404, f"no route {method} {path}")

    def _authorize(self, headers: dict[str, str]) -> None:
        key = self.settings.api_key
        given = headers.get("authorization", "").encode("utf-8", "replace")
        if key and not hmac.compare_digest(given, f"Bearer {key}".encode()):
            raise HttpError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'")

    def _add_style(self, name: str, query: dict[str, str], body: bytes) -> Reply:
        from adainrt.images import decode_image, resize_smaller_side

        self.bank.check_name(name)
        size = int(query.get("size", 512))  # as `adainrt style add --style-size`
        image = self._within_limit(resize_smaller_side(decode_image(body, f"style {name}"), size,
                                                         what=f"style {name}"), f"style {name}")
        with self._lock:
            stats = self.stylizer.style_stats(image)
        self.bank.add(name, stats, {"source": "http", "encoder_hash": self.stylizer.metadata.get("encoder_hash")})
        return Reply.json(201, {"stored": name})

    def _within_limit(self, image: Any, what: str) -> Any:
        """A hard cap on what one request may make a replica hold: a tiny flat PNG can decode to 100 MP."""
        width, height = image.size
        if width * height > self.settings.max_pixels:
            raise HttpError(413, f"{what} is {width}x{height} after resizing, above this server's limit of "
                                 f"{self.settings.max_pixels} pixels; send it smaller or ask for a smaller size")
        return image

    def _bank_style(self, name: str) -> Any:
        path = self.bank.path(name)
        mtime = path.stat().st_mtime if path.exists() else None
        cached = self.bank_stats.get(name)
        if cached is None or cached[0] != mtime:
            stats = self.bank.get(name, self.stylizer.metadata.get("encoder_hash")).stats
            self.bank_stats[name] = cached = (mtime, stats)
        return cached[1]

    def _stylize_request(self, query: dict[str, str], headers: dict[str, str], body: bytes) -> Any:
        """The StylizeRequest of a stylize call, every input decoded and checked (bad ones fail here,
        alone, before the batch runs)."""
        from adainrt.images import decode_image, resize_smaller_side
        from adainrt.runtime import StylizeRequest
        from adainrt.runtime.controls import StyleStats, parse_weights
        from adainrt.runtime.jobs import StylizeOptions

        options = StylizeOptions(alpha=float(query.get("alpha", 1.0)), content_size=int(query.get("size", 512)),
                                 style_weights=parse_weights(query["style_weights"]) if "style_weights" in query
                                 else None, preserve_color=query.get("preserve_color") or None)
        content_type = headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            parts = multipart_parts(body, content_type)
            if "content" not in parts or "style" not in parts:
                raise HttpError(400, "a multipart request needs a 'content' and a 'style' part")
            content = decode_image(parts["content"], "content")
            styles = [resize_smaller_side(decode_image(parts["style"], "style"), options.style_size,
                                          what="style")]
        else:
            names = [n for n in query.get("style", "").split(",") if n]
            if not names:
                raise HttpError(400, "name a stored style (?style=NAME) or send multipart content and style parts")
            content = decode_image(body, "content")
            styles = [self._bank_style(name) for name in names]
        content = self._within_limit(resize_smaller_side(content, options.content_size, what="content"),
                                       "content")
        for style in styles:
            if not isinstance(style, StyleStats):
                self._within_limit(style, "style")
        return StylizeRequest(content, styles, options.alpha, preserve_color=options.preserve_color,
                              style_weights=options.weights)


def encoded(image: Any, jpeg: bool, batch: int) -> Reply:
    """A stylized PIL image as a PNG (or JPEG) reply."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))
    return Reply(200, "image/jpeg" if jpeg else "image/png", buffer.getvalue(), batch=batch)


def deployment(settings: ServeSettings, replicas: int = 1, min_replicas: int | None = None,
               max_replicas: int | None = None, cpus: float = 1.0, gpus: float = 0.0) -> Any:
    """The Ray Serve application: replicas (fixed, or autoscaled between min and max) of the app."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response

    @serve.deployment(name="adainrt", ray_actor_options={"num_cpus": cpus, "num_gpus": gpus},
                      max_ongoing_requests=max(16, 2 * settings.max_batch))  # room for the next batch to gather
    class StylizeDeployment:
        def __init__(self, settings: ServeSettings):
            self.app = StylizeApp(settings)
            self.replica = f"{os.uname().nodename}:{os.getpid()}"
            self.stylize_batch.set_max_batch_size(settings.max_batch)
            self.stylize_batch.set_batch_wait_timeout_s(settings.batch_wait_s)

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        async def stylize_batch(self, calls: list[Call]) -> list[Reply]:
            """Stylize calls that arrived together, run as one batch off the event loop."""
            return await asyncio.get_running_loop().run_in_executor(None, self.app.handle_many, calls)

        async def __call__(self, request: Request) -> Response:
            length = int(request.headers.get("content-length") or 0)
            if length > settings.max_body_bytes:  # refused before the body is read
                reply = Reply.json(413, {"error": f"body of {length} bytes is above the limit of "
                                                  f"{settings.max_body_bytes}"})
            else:
                call = Call(request.method, request.url.path, dict(request.query_params), dict(request.headers),
                            await request.body())
                if (call.method, call.path) == ("POST", "/v1/stylize"):
                    reply = await self.stylize_batch(call)
                else:
                    replies = await asyncio.get_running_loop().run_in_executor(None, self.app.handle_many, [call])
                    reply = replies[0]
            headers = {REPLICA_HEADER: self.replica, **({BATCH_HEADER: str(reply.batch)} if reply.batch else {})}
            return Response(reply.body, status_code=reply.status, media_type=reply.content_type, headers=headers)

    if min_replicas is not None or max_replicas is not None:
        scaling = {"min_replicas": min_replicas or 1, "max_replicas": max(max_replicas or 1, min_replicas or 1)}
        return StylizeDeployment.options(autoscaling_config=scaling).bind(settings)
    return StylizeDeployment.options(num_replicas=replicas).bind(settings)


def check_settings(settings: ServeSettings) -> None:
    """Refuse a model folder that cannot serve before Ray starts (a clear error, not a dead replica)."""
    from adainrt.contract import FORMS, graph_precision, verified_graphs
    from adainrt.runtime import choose

    precision, _why = choose(settings.backend).backend.precision()
    verified_graphs(settings.model_dir, FORMS["split"], graph_precision(precision))
    if settings.max_body_bytes < 1 or settings.max_pixels < 1:
        raise ImageError("the body and pixel limits must be positive")
    if settings.max_batch < 1 or not 0.0 <= settings.batch_wait_s <= 1.0:
        raise AdainrtError(f"a batch takes 1 or more requests and waits 0 to 1 s, not {settings.max_batch} "
                           f"requests and {settings.batch_wait_s} s")
