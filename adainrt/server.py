"""`adainrt serve`: stylization over HTTP on Ray Serve, from one machine to a Ray cluster.

Three layers, so each can be tested alone:

* :class:`StylizeService`, the work: one :class:`~adainrt.runtime.Stylizer` (graphs loaded once),
  the style bank (a bank style's statistics loaded once per replica), decoding and checking of
  inputs, and a batch run. No HTTP in it.
* :func:`create_app`, the HTTP API as a FastAPI app over a service and a *stylize callable*:
  routes, parameters validated by FastAPI, the API key as a security dependency, multipart through
  python-multipart, errors as ``{"error": "..."}`` with the status that fits, the web page at ``/``
  and ``/openapi.json`` + ``/docs``. In-process (tests, a script) the callable runs each request
  alone; no Ray is needed.
* :func:`deployment`, the Ray Serve shell: the same app as the deployment's ingress, with the
  stylize callable batched across clients by ``@serve.batch`` (the requests that arrive together
  run as one encoder and one decoder run per content size, each with its own style and alpha).

Hostile clients are bounded before they cost anything: the API key is checked before the body is
read, the body is counted while it arrives (413 as soon as it passes the limit, or at once when
its Content-Length announces more) and must arrive within a deadline (408), multipart bodies may
hold only a few parts, and ``/healthz`` answers on the event loop, never behind stylize work.
"""

import asyncio
import base64
import functools
import hmac
import io
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Annotated, Any, Literal

from adainrt.client import check_api_key
from adainrt.errors import AdainrtError, BackendUnavailable, ImageError, ModelError, OutputExists, OutputUnwritable
from adainrt.serve_proxy import body_too_large

#: The replica that answered, for clients and tests that look at load spreading.
REPLICA_HEADER = "X-Adainrt-Replica"
#: How many stylize requests shared the run that answered this one.
BATCH_HEADER = "X-Adainrt-Batch"
PNG, JPEG = "image/png", "image/jpeg"
#: Requests a replica admits at once. Well above a batch: slow or stalled uploads hold a slot until
#: their read deadline, and /healthz must still find one (Ray Serve queues beyond this number).
MAX_ONGOING_REQUESTS = 128
#: The parts a multipart stylize body may have ('content' and 'style'); a few more are read only to
#: name them in the error, so 900,000 tiny parts cost nothing.
MULTIPART_PARTS = ("content", "style")
MAX_MULTIPART_ITEMS = 4
THUMBNAIL_SIZE = 160
#: On SIGTERM or Ctrl-C, how long replicas may take to answer the requests they hold before they stop
#: (below the 60 s that Ray Serve's serve.delete waits for an application to go).
DRAIN_TIMEOUT_S = 45.0
#: How long Ray Serve's controller waits for a new HTTP proxy to answer before it kills it (Ray's
#: default of 5 s, 5 s longer on each retry, fails `serve` on a loaded 2-core machine).
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"
PROXY_READY_S = 30.0


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
    #: Seconds a request body may take to arrive, all of it (a slow or stalled client gets 408).
    body_timeout_s: float = 60.0


class HttpError(AdainrtError):
    """An error with its HTTP status (raised by the service; the app answers it as JSON)."""

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


@dataclass(frozen=True)
class Job:
    """One checked stylize request, ready for a batch, and the format its answer goes out in."""

    request: Any  # adainrt.runtime.StylizeRequest
    media_type: str = PNG


@dataclass(frozen=True)
class Stylized:
    """One answer of a batch: the encoded image, its type, and how many requests shared the run."""

    body: bytes
    media_type: str
    batch: int


#: What the app calls to stylize one job (an exception on failure); batching lives behind it.
StylizeFn = Callable[[Job], Awaitable[Stylized]]


class StylizeService:
    """The work behind the routes over one Stylizer and one style bank. Framework-free and
    thread-safe: decoding and checking run in parallel, the Stylizer one batch at a time."""

    def __init__(self, settings: ServeSettings):
        from adainrt.runtime import Stylizer
        from adainrt.runtime.style_bank import StyleBank

        self.settings = settings
        self.stylizer = Stylizer(settings.model_dir, settings.backend, max_pixels=settings.max_pixels)
        self.bank = StyleBank(settings.bank_dir)
        self.bank_stats: dict[str, tuple[float | None, Any]] = {}  # name -> (file mtime, statistics)
        self._lock = threading.Lock()  # one thread at a time in the Stylizer (runners, style cache)

    @property
    def backend(self) -> str:
        return self.stylizer.backend

    def close(self) -> None:
        self.stylizer.close()

    def add_style(self, name: str, data: bytes, size: int) -> None:
        """Store a style image's statistics (and a small thumbnail for the web page) under ``name``."""
        from adainrt.images import decode_image, resize_smaller_side

        self.bank.check_name(name)
        image = self._within_limit(resize_smaller_side(decode_image(data, f"style {name}"), size,
                                                       what=f"style {name}"), f"style {name}")
        with self._lock:
            stats = self.stylizer.style_stats(image)
        self.bank.add(name, stats, {"source": "http", **self.stylizer.model_info, "thumbnail_jpeg": thumbnail(image)})

    def thumbnail(self, name: str) -> bytes:
        """The JPEG thumbnail stored with a style added over HTTP (404 for one added otherwise)."""
        stored = self.bank.get(name)
        encoded = stored.info.get("thumbnail_jpeg")
        if not isinstance(encoded, str):
            raise HttpError(404, f"style {name!r} has no thumbnail (it was not added over HTTP)")
        return base64.b64decode(encoded)

    def prepare(self, content: bytes, style: bytes | None, names: Sequence[str], options: Any) -> Any:
        """The StylizeRequest of one stylize call, every input decoded and checked (a bad one fails
        here, alone, before the batch runs). ``style``: an image's bytes, or None for ``names``."""
        from adainrt.images import decode_image, resize_smaller_side
        from adainrt.runtime import StylizeRequest

        if style is None and not names:
            raise HttpError(400, "name a stored style (?style=NAME) or send multipart 'content' and 'style' parts")
        image = self._within_limit(resize_smaller_side(decode_image(content, "content"), options.content_size,
                                                       what="content"), "content")
        if style is not None:
            styles = [self._within_limit(resize_smaller_side(decode_image(style, "style"), options.style_size,
                                                             what="style"), "style")]
        else:
            styles = [self._bank_style(name) for name in names]
        return StylizeRequest(image, styles, options.alpha, preserve_color=options.preserve_color,
                              style_weights=options.weights)

    def run(self, jobs: Sequence[Job]) -> list[Stylized | Exception]:
        """One answer per job, in order; never raises. The jobs run as one batch; when the batch
        fails, each runs alone, so a bad one fails alone."""
        if not jobs:
            return []
        try:
            with self._lock:
                images = self.stylizer.stylize_many([job.request for job in jobs])
        except Exception as exc:  # every failure is an answer: a bad request must not take the replica down
            return [exc] if len(jobs) == 1 else [done for job in jobs for done in self.run([job])]
        return [encoded(image, job.media_type, len(jobs)) for job, image in zip(jobs, images, strict=True)]

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
            stats = self.bank.get(name, self.stylizer.encoder_hash, self.stylizer.variant.name).stats
            self.bank_stats[name] = cached = (mtime, stats)
        return cached[1]


def encoded(image: Any, media_type: str, batch: int) -> Stylized:
    """A stylized PIL image as PNG (or JPEG) bytes."""
    buffer = io.BytesIO()
    jpeg = media_type == JPEG
    image.save(buffer, format="JPEG" if jpeg else "PNG", **({"quality": 95} if jpeg else {}))
    return Stylized(buffer.getvalue(), media_type, batch)


def thumbnail(image: Any) -> str:
    """A small JPEG of a style image, base64 (it rides in the bank entry's JSON record)."""
    small = image.copy()
    small.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def unbatched(service: StylizeService) -> StylizeFn:
    """The stylize callable of an in-process app: each request runs alone, in a worker thread."""
    from starlette.concurrency import run_in_threadpool

    async def stylize(job: Job) -> Stylized:
        return answer((await run_in_threadpool(service.run, [job]))[0])

    return stylize


def answer(result: Stylized | Exception) -> Stylized:
    """A batch's answer for one job, or its error raised (the app turns it into a status)."""
    if isinstance(result, Exception):
        raise result
    return result


def negotiate(accept: str | None) -> str:
    """PNG or JPEG as the Accept header ranks them (q-values honoured; PNG on a tie, it is lossless);
    406 when it accepts neither. No library in the stack ranks Accept headers, so this does."""
    if not accept or not accept.strip():
        return PNG
    quality: dict[str, tuple[int, float]] = {}  # offered type -> (specificity of the match, q)
    for item in accept.split(","):
        media, *params = (piece.strip().lower() for piece in item.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = min(max(float(param[2:]), 0.0), 1.0)
                except ValueError:
                    raise HttpError(400, f"Accept: {item.strip()!r} has a malformed q value") from None
        for offered in (PNG, JPEG):
            specificity = 2 if media == offered else 1 if media == "image/*" else 0 if media == "*/*" else -1
            if specificity >= 0 and specificity >= quality.get(offered, (-1, 0.0))[0]:
                quality[offered] = (specificity, q)
    png_q, jpeg_q = (quality.get(offered, (-1, 0.0))[1] for offered in (PNG, JPEG))
    if png_q <= 0 and jpeg_q <= 0:
        raise HttpError(406, f"Accept: {accept!r} allows neither image/png nor image/jpeg, the two formats this "
                             "server answers in")
    return JPEG if jpeg_q > png_q else PNG


# ------------------------------------------------------------------------------------------ ASGI guards


class BodyGuard:
    """Pure ASGI middleware that bounds a request body while it arrives: a Content-Length above the
    limit is refused when the app first asks for the body (so after the API key check), the bytes are
    counted as they come (413 the moment they pass the limit, the rest never read), and all of it must
    arrive within ``timeout_s`` (408), so a slow or stalled client cannot hold a replica's slot."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.exceptions import HTTPException

        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        state = {"seen": 0, "deadline": None, "done": False}

        async def guarded() -> dict:
            if state["done"]:  # the body is in: later calls wait for a disconnect, unbounded
                return await receive()
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise HTTPException(413, f"body of {int(declared)} bytes is above the limit of {self.max_bytes}")
            if state["deadline"] is None:
                state["deadline"] = time.monotonic() + self.timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(state["deadline"] - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                raise HTTPException(408, f"the request body did not arrive within {self.timeout_s:g} s") from None
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > self.max_bytes:
                    raise HTTPException(413, body_too_large(self.max_bytes))
                state["done"] = not message.get("more_body", False)
            return message

        await self.app(scope, guarded, send)


class ReplicaHeader:
    """Pure ASGI middleware: every response names the replica that answered."""

    def __init__(self, app: Any, replica: str):
        self.app, self.header = app, (REPLICA_HEADER.lower().encode(), replica.encode())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        async def named(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, named if scope["type"] == "http" else send)


# ------------------------------------------------------------------------------------------ the app

ERROR_STATUSES = {
    400: "Bad input: a parameter, an image or a multipart body (the message names it)",
    401: "Missing or wrong API key",
    404: "Unknown stored style",
    406: "The Accept header allows neither image/png nor image/jpeg",
    408: "The request body did not arrive within the server's deadline",
    409: "A style of that name is stored already",
    413: "The body or an image is above the server's limits",
    500: "The server failed (its message says why)",
    503: "The backend is not available on this replica",
}
IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}


@functools.cache
def _error_body() -> type:
    """The error response's model (pydantic comes with the serve extra, so it is imported late)."""
    from pydantic import BaseModel

    class ErrorBody(BaseModel):
        error: str

    return ErrorBody


def _errors(*statuses: int) -> dict:
    return {status: {"model": _error_body(), "description": ERROR_STATUSES[status]} for status in statuses}


def create_app(service: StylizeService, stylize: StylizeFn | None = None, replica: str | None = None) -> Any:
    """The HTTP API (and web page) over ``service``; ``stylize`` runs one job (default: alone, in a
    thread; Ray Serve passes its batched one). Needs FastAPI and python-multipart, not Ray."""
    from fastapi import Depends, Header, Path, Query, Request, Security
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
    from fastapi.staticfiles import StaticFiles
    from fastapi_offline import FastAPIOffline
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from adainrt import __version__
    from adainrt.runtime.jobs import StylizeOptions

    settings = service.settings
    run_job = stylize or unbatched(service)
    bearer = HTTPBearer(auto_error=False, description="The server's API key (when it was started with one)")

    def require_key(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]) -> None:
        """The key, compared in constant time; checked before any body is read."""
        given = credentials.credentials.encode("utf-8", "replace") if credentials else b""
        if not hmac.compare_digest(given, (settings.api_key or "").encode("latin-1")):
            raise HTTPException(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})

    def strict_query(request: Request) -> None:
        """Refuse what FastAPI would ignore: unknown, misspelt or array-form parameters and repeats."""
        route = request.scope.get("route")
        known = query_names(route.dependant) if route else set()
        seen: set[str] = set()
        for name, _value in request.query_params.multi_items():
            if name not in known:
                takes = ", ".join(sorted(known)) or "none"
                raise HTTPException(400, f"unknown parameter {name!r} (this route takes: {takes})")
            if name in seen:
                raise HTTPException(400, f"parameter {name!r} is given more than once; give it once")
            seen.add(name)

    keyed = [Security(require_key)] if settings.api_key else []
    # FastAPIOffline serves /docs' Swagger UI from files in its wheel: the default loads it from a
    # CDN, which an air-gapped machine cannot reach.
    app = FastAPIOffline(title="adainrt", version=__version__, dependencies=[Depends(strict_query)],
                  description="AdaIN arbitrary style transfer over HTTP. Errors are JSON `{\"error\": ...}`.")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "; ".join(validation_message(e) for e in exc.errors())}, 400)

    @app.exception_handler(AdainrtError)
    @app.exception_handler(ValueError)
    async def refused(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_of(exc))

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, 500)

    async def read_body(request: Request) -> bytes:
        return await request.body()  # bounded by BodyGuard

    async def read_parts(request: Request, style_names: str | None) -> tuple[bytes, bytes | None]:
        """(content, style image or None) of a stylize body: raw image bytes, or multipart parts."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return await read_body(request), None
        limit = settings.max_body_bytes
        async with request.form(max_files=MAX_MULTIPART_ITEMS, max_fields=MAX_MULTIPART_ITEMS,
                                max_part_size=limit) as form:
            for name in form:
                if name not in MULTIPART_PARTS:
                    raise HTTPException(400, f"unknown multipart part {name!r} (send 'content' and 'style')")
                if len(form.getlist(name)) > 1:
                    raise HTTPException(400, f"multipart part {name!r} is sent more than once; send it once")
            if "content" not in form:
                raise HTTPException(400, "the multipart body has no 'content' part (the photo)")
            if ("style" in form) == bool(style_names):
                raise HTTPException(400, "give the style once: a multipart 'style' part or ?style=NAME, not both"
                                    if style_names else "the multipart body has no 'style' part (or use ?style=)")
            return await part_bytes(form["content"]), (await part_bytes(form["style"]) if "style" in form else None)

    @app.get("/healthz", summary="Liveness: the backend in use", tags=["service"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "backend": service.backend, "variant": service.stylizer.variant.name,
                "api_key_required": bool(settings.api_key),
                "limits": {"max_body_bytes": settings.max_body_bytes, "max_pixels": settings.max_pixels}}

    @app.get("/v1/styles", dependencies=keyed, summary="Names of the stored styles of the served network variant",
             tags=["styles"],
             responses=_errors(400, 401))
    async def styles() -> list[str]:
        return await run_in_threadpool(service.bank.names, service.stylizer.variant.name)

    @app.post("/v1/styles/{name}", dependencies=keyed, status_code=201, tags=["styles"],
              summary="Store a style image's statistics under NAME (the body: the image file)",
              responses=_errors(400, 401, 408, 409, 413, 500),
              openapi_extra={"requestBody": {"required": True, "content": {"application/octet-stream": IMAGE_BODY,
                                                                             "image/*": IMAGE_BODY}}})
    async def add_style(request: Request,
                        name: Annotated[str, Path(description="letters, digits, '_', '-', '.'; at most 64")],
                        size: Annotated[int, Query(ge=0, le=8192, description="The style's smaller side "
                                                   "before encoding; 0 keeps it as it is")] = 512,
                        ) -> dict[str, str]:
        service.bank.check_name(name)  # before the body is read
        await run_in_threadpool(service.add_style, name, await read_body(request), size)
        return {"stored": name}

    @app.get("/v1/styles/{name}/thumbnail", dependencies=keyed, tags=["styles"], response_class=Response,
             summary="A small JPEG of a style added over HTTP (for the web page)",
             responses={200: {"content": {JPEG: IMAGE_BODY}}, **_errors(400, 401, 404)})
    async def style_thumbnail(name: str) -> Response:
        return Response(await run_in_threadpool(service.thumbnail, name), media_type=JPEG,
                        headers={"Cache-Control": "no-cache"})

    @app.post("/v1/stylize", dependencies=keyed, tags=["stylize"], response_class=Response,
              summary="Stylize a photo with a stored style (raw body) or a sent one (multipart)",
              responses={200: {"content": {PNG: IMAGE_BODY, JPEG: IMAGE_BODY},
                               "description": "The stylized photo, PNG unless Accept prefers JPEG"},
                         **_errors(400, 401, 404, 406, 408, 413, 500, 503)},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": IMAGE_BODY, "image/*": IMAGE_BODY,
                  "multipart/form-data": {"schema": {"type": "object", "required": ["content"], "properties": {
                      "content": {"type": "string", "format": "binary", "description": "the photo"},
                      "style": {"type": "string", "format": "binary",
                                "description": "the style image (or ?style=NAME)"}}}}}}})
    async def stylize_route(
        request: Request,
        style: Annotated[str | None, Query(max_length=1000, description="Stored style name(s), comma-separated "
                                           "(with a raw body)")] = None,
        alpha: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False,
                                      description="Stylization strength: 0 the photo, 1 full style")] = 1.0,
        size: Annotated[int, Query(ge=0, le=8192, description="The photo's smaller side; 0 keeps it")] = 512,
        style_weights: Annotated[str | None, Query(max_length=1000, description="Comma-separated weights, one "
                                                   "per stored style")] = None,
        preserve_color: Annotated[Literal["color", "luminance"] | None, Query(
            description="Keep the photo's colours (color: match the style's colours to the photo's first; "
                        "luminance: stylize brightness only)")] = None,
        accept: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Response:
        from adainrt.runtime.controls import parse_weights

        media_type = negotiate(accept)  # 406 before the body is read
        options = StylizeOptions(alpha=alpha, content_size=size, preserve_color=preserve_color,
                                 style_weights=parse_weights(style_weights) if style_weights else None)
        content, style_image = await read_parts(request, style)
        names = [name for name in (style or "").split(",") if name]
        job = Job(await run_in_threadpool(service.prepare, content, style_image, names, options), media_type)
        done = await run_job(job)
        return Response(done.body, media_type=done.media_type, headers={BATCH_HEADER: str(done.batch)})

    web = resources.files("adainrt") / "web"

    @app.get("/", response_class=HTMLResponse, tags=["page"], summary="The web page: stylize in the browser")
    async def page() -> HTMLResponse:
        return HTMLResponse((web / "index.html").read_text(encoding="utf-8"))

    app.mount("/web", StaticFiles(directory=str(web)), name="web")
    app.openapi = functools.partial(described_errors_only, app, app.openapi)
    guarded = BodyGuard(app, settings.max_body_bytes, settings.body_timeout_s)
    return ReplicaHeader(guarded, replica) if replica else guarded


def described_errors_only(app: Any, make_schema: Callable[[], dict]) -> dict:
    """FastAPI's schema without its 422 responses: a parameter FastAPI rejects is answered 400 with our
    JSON error (the handler above), so 422 is never sent and a client must not be told it might be."""
    if app.openapi_schema is None:
        schema = make_schema()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
    return app.openapi_schema


def query_names(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included."""
    return {param.alias for param in dependant.query_params}.union(*map(query_names, dependant.dependencies))


async def part_bytes(part: Any) -> bytes:
    """A multipart part's bytes, whether it came as a file or a plain field."""
    return await part.read() if hasattr(part, "read") else str(part).encode()


def validation_message(error: dict) -> str:
    """One of FastAPI's validation errors as one line naming the parameter."""
    where = [str(piece) for piece in error.get("loc", ()) if piece not in ("query", "path", "header", "body")]
    return f"{'.'.join(where) or 'request'}: {error.get('msg', 'invalid')} (got {error.get('input')!r})"


def deployment(settings: ServeSettings, replicas: int = 1, min_replicas: int | None = None,
               max_replicas: int | None = None, cpus: float = 1.0, gpus: float = 0.0) -> Any:
    """The Ray Serve application: replicas (fixed, or autoscaled between min and max) of the app,
    the FastAPI app as each replica's ingress and its stylize calls batched by ``@serve.batch``."""
    from ray import serve

    @serve.deployment(name="adainrt", ray_actor_options={"num_cpus": cpus, "num_gpus": gpus},
                      graceful_shutdown_timeout_s=DRAIN_TIMEOUT_S, graceful_shutdown_wait_loop_s=0.5,
                      max_ongoing_requests=max(MAX_ONGOING_REQUESTS, 2 * settings.max_batch))
    @serve.ingress()
    class StylizeDeployment:
        def __init__(self, settings: ServeSettings):
            self.service = StylizeService(settings)
            self.replica = f"{os.uname().nodename}:{os.getpid()}"
            self.batch.set_max_batch_size(settings.max_batch)
            self.batch.set_batch_wait_timeout_s(settings.batch_wait_s)

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
        async def batch(self, jobs: list[Job]) -> list[Stylized | Exception]:
            """Stylize jobs that arrived together, run as one batch off the event loop."""
            return await asyncio.get_running_loop().run_in_executor(None, self.service.run, jobs)

        async def stylize(self, job: Job) -> Stylized:
            return answer(await self.batch(job))

        def __serve_build_asgi_app__(self) -> Any:
            return create_app(self.service, self.stylize, self.replica)

    if min_replicas is not None or max_replicas is not None:
        scaling = {"min_replicas": min_replicas or 1, "max_replicas": max(max_replicas or 1, min_replicas or 1)}
        return StylizeDeployment.options(autoscaling_config=scaling).bind(settings)
    return StylizeDeployment.options(num_replicas=replicas).bind(settings)


@dataclass(frozen=True)
class Placement:
    """Where the replicas run: a fixed number, or autoscaled between ``min_replicas`` and
    ``max_replicas``; each with its CPUs and GPUs; on a local Ray, or the cluster at ``address``."""

    replicas: int = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    address: str | None = None

    @property
    def autoscaled(self) -> bool:
        return self.min_replicas is not None or self.max_replicas is not None


def run_service(host: str, port: int, placement: Placement, model_dir: Any = None, variant: str | None = None,
                graphs: Any = None, say: Callable[[str], None] = print, **settings: Any) -> None:
    """`adainrt serve`: check everything a clear line can refuse, start Ray and the app, and serve
    until Ctrl-C or SIGTERM (``docker stop``, systemd), then stop Ray.

    ``model_dir`` None: the bundled weights' graphs, made by ``graphs`` (the exporter's cache);
    ``settings``: the other :class:`ServeSettings` fields (``max_batch`` None: 8 where the replicas
    compute on a GPU, 1 on a CPU, where one image already fills the cores)."""
    from adainrt.errors import interrupt_on_sigterm
    from adainrt.runtime import choose
    from adainrt.runtime.jobs import model_dir_for
    from adainrt.runtime.ray_jobs import check_room, init_ray

    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise AdainrtError("serving needs Ray Serve: pip install 'adainrt[serve]'") from exc
    check_listening(host, port)
    check_ray_address(placement.address)
    check_folders(settings.get("bank_dir"))
    backend = settings.get("backend", "auto")
    here = choose(backend)  # the replicas choose again where they run (their node may differ)
    folder, _precision = model_dir_for(model_dir, backend=here, progress=say, graphs=graphs, variant=variant)
    if settings.get("max_batch") is None:  # replicas given GPUs may run where this driver has none
        settings["max_batch"] = 8 if placement.gpus > 0 or here.backend.device == "cuda" else 1
    if settings.get("bank_dir") is not None:
        settings["bank_dir"] = os.path.realpath(settings["bank_dir"])
    config = ServeSettings(str(folder.resolve()), **settings)
    check_settings(config)
    from adainrt.serve_proxy import CALLBACK, CALLBACK_ENV, LIMIT_ENV

    # A local Ray's proxy inherits these: JSON for its own errors, the body limit where bodies are read,
    # and a readiness deadline a busy machine can meet (Ray's 5 s killed the proxy of a 2-core machine
    # that was training, and `serve` failed).
    os.environ.setdefault(CALLBACK_ENV, CALLBACK)
    os.environ[LIMIT_ENV] = str(config.max_body_bytes)
    os.environ.setdefault(PROXY_READY_ENV, str(PROXY_READY_S))
    init_ray(ray, placement.address)
    try:  # a local Ray would wait forever for replicas it cannot place
        check_room(ray, placement.address, placement.min_replicas or placement.replicas, placement.cpus,
                   placement.gpus)
    except AdainrtError as exc:
        raise exc.hinted("lower --replicas or --cpus-per-replica / --gpus-per-replica") from None
    interrupt_on_sigterm()
    try:
        try:
            serve.start(http_options={"host": host, "port": port})
            serve.run(deployment(config, placement.replicas, placement.min_replicas, placement.max_replicas,
                                 placement.cpus, placement.gpus), name="adainrt", route_prefix="/")
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AdainrtError(f"Ray Serve did not start: {first}").hinted(
                f"on a busy machine, give its parts longer to start ({PROXY_READY_ENV}=60) or free CPUs; "
                "the Ray logs are under /tmp/ray/session_latest/logs") from None
        replicas = "autoscaling" if placement.autoscaled else f"{placement.replicas} replica(s)"
        say(f"adainrt serve: ready on http://{host}:{port} (model {folder}, backend {backend}, {replicas}, "
            f"batches of up to {config.max_batch}); Ctrl-C stops")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        say(f"stopping: answering the requests in flight first (at most {DRAIN_TIMEOUT_S:g} s; Ctrl-C again "
            "stops at once)")
        try:
            serve.delete("adainrt")  # replicas finish the requests they hold before they go
        except TimeoutError:
            say(f"requests were still running after {DRAIN_TIMEOUT_S:g} s; stopping anyway")
    finally:
        serve.shutdown()
        ray.shutdown()


def check_settings(settings: ServeSettings) -> None:
    """Refuse a model folder that cannot serve before Ray starts (a clear error, not a dead replica)."""
    import math

    from adainrt.contract import FORMS, graph_precision, verified_graphs
    from adainrt.runtime import choose

    precision, _why = choose(settings.backend).backend.precision()
    verified_graphs(settings.model_dir, FORMS["split"], graph_precision(precision))
    if settings.max_body_bytes < 1 or settings.max_pixels < 1:
        raise ImageError("the body and pixel limits must be positive")
    if settings.max_batch < 1 or not 0.0 <= settings.batch_wait_s <= 1.0:
        raise AdainrtError(f"a batch takes 1 or more requests and waits 0 to 1 s, not {settings.max_batch} "
                           f"requests and {settings.batch_wait_s} s")
    if not (math.isfinite(settings.body_timeout_s) and settings.body_timeout_s > 0):
        raise AdainrtError(f"the body deadline must be a positive number of seconds, not {settings.body_timeout_s}")
    check_api_key(settings.api_key)


def check_listening(host: str, port: int) -> None:
    """Refuse a port something already listens on, before minutes of Ray start-up end in its traceback."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise AdainrtError(f"cannot listen on {host}: {exc.strerror or exc}; give --host an address of this "
                           "machine") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise AdainrtError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port, or stop "
                               "what listens there") from None


def check_ray_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Refuse a cluster address where nothing answers: Ray itself would wait for it in silence."""
    import socket
    import urllib.parse

    if address is None or address == "auto":
        return
    parsed = urllib.parse.urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parsed.hostname, parsed.port or (10001 if parsed.scheme == "ray" else 6379)
    except ValueError:
        host = port = None
    if not host:
        raise AdainrtError(f"--address {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        raise AdainrtError(f"no Ray answers at {address} ({exc.strerror or exc}); start one there with `ray start "
                           "--head`, or leave --address out for a local Ray") from None


def check_folders(bank_dir: Any = None) -> None:
    """The cache and the style bank must be folders (or not exist yet): a file there fails deep inside
    Ray's replicas otherwise."""
    from adainrt.fileio import cache_root
    from adainrt.runtime.style_bank import default_bank_dir

    for path, what in ((cache_root(), "the cache ($ADAINRT_CACHE)"),
                       (bank_dir or default_bank_dir(), "the style bank (--bank-dir or $ADAINRT_STYLES)")):
        if path.exists() and not path.is_dir():
            raise AdainrtError(f"{what} {path} is a file, not a folder; point it at a folder or unset it")
