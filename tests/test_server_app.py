"""The HTTP app behind `adainrt serve`, in-process with FastAPI's TestClient (no Ray): routes, statuses,
parameter validation, the key before the body, body limits and deadlines, and the service's batches."""

import asyncio
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from adainrt.server import BATCH_HEADER, Job, ServeSettings, StylizeService, create_app, negotiate
from tests.helpers import synthetic_image

pytest.importorskip("fastapi", reason="FastAPI comes with Ray Serve (pip install 'adainrt[serve]')")
pytest.importorskip("multipart", reason="python-multipart comes with 'adainrt[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

KEY = "app-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def service(exported_dir, tmp_path_factory):
    service = StylizeService(ServeSettings(str(exported_dir), "ort-cpu", bank_dir=str(tmp_path_factory.mktemp("bank")),
                                           api_key=KEY, max_body_bytes=1 << 20, body_timeout_s=1.0))
    yield service
    service.close()


@pytest.fixture(scope="module")
def client(service):
    with TestClient(create_app(service, replica="test-replica")) as client:
        style = png(synthetic_image(64, 64, seed=1))
        assert client.post("/v1/styles/one?size=0", content=style, headers=AUTH).status_code == 201
        yield client


def error(response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()["error"]


def test_health_styles_and_the_page(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["api_key_required"] is True and health.headers["x-adainrt-replica"] == "test-replica"
    assert "one" in client.get("/v1/styles", headers=AUTH).json()
    thumb = client.get("/v1/styles/one/thumbnail", headers=AUTH)
    assert thumb.status_code == 200 and Image.open(io.BytesIO(thumb.content)).size == (64, 64)
    page = client.get("/")
    assert page.status_code == 200 and "<title>adainrt" in page.text
    for asset in ("web/app.js", "web/style.css"):
        assert asset in page.text and client.get(f"/{asset}").status_code == 200
    assert "//cdn" not in page.text and "https://" not in client.get("/web/app.js").text  # works offline


def test_stylize_raw_and_multipart_keep_the_size_and_match_each_other(client):
    content = synthetic_image(56, 48, seed=10)
    style = png(synthetic_image(64, 64, 1))
    assert client.post("/v1/styles/one-512", content=style, headers=AUTH).status_code == 201  # as a sent one: 512
    raw = client.post("/v1/stylize?style=one-512&alpha=0.6&size=0", content=png(content), headers=AUTH)
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    assert raw.headers[BATCH_HEADER] == "1"
    sent = client.post("/v1/stylize?alpha=0.6&size=0", headers=AUTH,
                       files={"content": ("c.png", png(content)), "style": ("s.png", style)})
    assert sent.status_code == 200, sent.text
    a, b = (np.asarray(Image.open(io.BytesIO(r.content)), np.int16) for r in (raw, sent))
    assert a.shape == b.shape == (56, 48, 3) and np.abs(a - b).max() <= 2
    assert np.abs(a - np.asarray(content, np.int16)).mean() > 5  # stylized, not the photo back
    jpeg = client.post("/v1/stylize?style=one&size=0", content=png(content), headers={**AUTH, "Accept": "image/jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"


@pytest.mark.parametrize(("query", "status", "names"), [
    ("style=one&alpah=0.1", 400, "alpah"),
    ("style=one&alpha[]=0.5", 400, "alpha[]"),
    ("style=one&alpha=0.5&alpha=0.2", 400, "alpha"),
    ("style=one&alpha=3", 400, "alpha"),
    ("style=one&alpha=nan", 400, "alpha"),
    ("style=one&size=-1", 400, "size"),
    ("style=one&preserve_color=sepia", 400, "preserve_color"),
    ("style=nothing-here", 404, "nothing-here"),
    ("style=one&style_weights=1,x", 400, "weight"),
])
def test_bad_parameters_get_400_naming_them(client, query, status, names):
    response = client.post(f"/v1/stylize?{query}", content=png(synthetic_image(32, 32, 2)), headers=AUTH)
    assert response.status_code == status and names in error(response), response.text


def test_multipart_duplicates_unknown_parts_and_both_styles_are_refused(client):
    photo, style = png(synthetic_image(32, 32, 3)), png(synthetic_image(32, 32, 4))
    cases = {
        "sent more than once": [("content", ("c", photo)), ("style", ("s", style)), ("style", ("t", style))],
        "unknown multipart part 'contnet'": [("contnet", ("c", photo)), ("style", ("s", style))],
        "no 'content' part": [("style", ("s", style))],
    }
    for message, files in cases.items():
        response = client.post("/v1/stylize", headers=AUTH, files=files)
        assert response.status_code == 400 and message in error(response), response.text
    both = client.post("/v1/stylize?style=one", headers=AUTH,
                       files=[("content", ("c", photo)), ("style", ("s", style))])
    assert both.status_code == 400 and "not both" in error(both)
    many = b"".join(b"--b\r\nContent-Disposition: form-data; name=\"f%d\"\r\n\r\nx\r\n" % k for k in range(5000))
    flood = client.post("/v1/stylize", headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b"},
                        content=many + b"--b--\r\n")
    assert flood.status_code == 400 and ("f0" in error(flood) or "Too many" in error(flood)), flood.text


def test_accept_negotiation():
    assert negotiate(None) == negotiate("*/*") == negotiate("image/png, image/jpeg") == "image/png"
    assert negotiate("image/jpeg") == negotiate("image/jpeg, */*;q=0.5") == "image/jpeg"
    assert negotiate("image/*;q=0.5, image/png;q=0") == "image/jpeg"


def test_accept_refusing_jpeg_is_406_or_png(client):
    photo = png(synthetic_image(32, 32, 5))
    refused = client.post("/v1/stylize?style=one", content=photo, headers={**AUTH, "Accept": "image/jpeg;q=0"})
    assert refused.status_code == 406 and "image/png" in error(refused)
    png_instead = client.post("/v1/stylize?style=one", content=photo,
                              headers={**AUTH, "Accept": "image/jpeg;q=0, image/png"})
    assert png_instead.status_code == 200 and png_instead.headers["content-type"] == "image/png"


def test_the_key_is_checked_before_the_body_and_the_limit_while_reading(client, service):
    big = b"\0" * (2 << 20)
    assert client.post("/v1/stylize?style=one", content=big).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v1/stylize?style=one", content=big, headers=wrong).status_code == 401
    too_big = client.post("/v1/stylize?style=one", content=big, headers=AUTH)
    assert too_big.status_code == 413 and "limit" in error(too_big)

    def chunks():  # chunked: no Content-Length, counted while it arrives
        yield from (b"\0" * 65536 for _ in range(40))

    streamed = client.post("/v1/stylize?style=one", content=chunks(), headers=AUTH)
    assert streamed.status_code == 413 and "limit" in error(streamed)
    assert client.get("/v1/styles").status_code == 401
    assert client.get("/nowhere").status_code == 404 and error(client.get("/nowhere"))
    assert client.get("/v1/stylize", headers=AUTH).status_code == 405


def test_a_stalled_body_gets_408_within_the_deadline_and_a_big_announced_one_413_unread(service):
    """At the ASGI level: a client that announces a body and sends nothing more is cut off."""
    app = create_app(service)

    async def request(headers: list, body_parts: list) -> tuple[int, dict, float]:
        scope = {"type": "http", "method": "POST", "path": "/v1/stylize", "raw_path": b"/v1/stylize",
                 "query_string": b"style=one", "headers": [(b"authorization", f"Bearer {KEY}".encode()), *headers],
                 "http_version": "1.1", "scheme": "http", "server": ("test", 80), "client": ("c", 1), "root_path": ""}
        sent, reads = [], 0

        async def receive():
            nonlocal reads
            reads += 1
            if body_parts:
                return {"type": "http.request", "body": body_parts.pop(0), "more_body": True}
            await asyncio.sleep(3600)  # the client stalls

        async def send(message):
            sent.append(message)

        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(app(scope, receive, send), 10)
        return sent[0]["status"], {"reads": reads}, asyncio.get_running_loop().time() - started

    status, _info, seconds = asyncio.run(request([(b"content-length", b"1000")], [b"x" * 10]))
    assert status == 408 and seconds < 3
    status, info, _seconds = asyncio.run(request([(b"content-length", b"300000000")], []))
    assert status == 413 and info["reads"] == 0  # refused from the announced length, nothing read


def test_a_batch_mixing_styles_alphas_and_bad_jobs_answers_each_alone(client, service):
    from adainrt.runtime.jobs import StylizeOptions

    style = png(synthetic_image(64, 64, 2))
    assert client.post("/v1/styles/two?size=0", content=style, headers=AUTH).status_code == 201
    contents = [synthetic_image(56, 48, seed=10 + k) for k in range(3)]

    def job(name: str, alpha: float, content, preserve: str | None = None) -> Job:
        options = StylizeOptions(alpha=alpha, content_size=0, preserve_color=preserve)
        return Job(service.prepare(png(content), None, [name], options))

    jobs = [job("one", 1.0, contents[0]), job("two", 0.4, contents[1]), job("two", 1.0, contents[2])]
    results = service.run(jobs)
    assert [r.batch for r in results] == [3, 3, 3]
    # a job that fails only inside the run (colour preservation needs a style image, not stored
    # statistics) fails alone; the others of its batch are answered, each run alone
    mixed = service.run([jobs[0], job("one", 1.0, contents[2], preserve="color"), jobs[1]])
    assert [getattr(r, "batch", None) for r in mixed] == [1, None, 1] and "colour preservation" in str(mixed[1])
    for result, alone_job in zip(results, jobs):
        alone = service.run([alone_job])[0]
        got, expected = (np.asarray(Image.open(io.BytesIO(r.body)), np.int16) for r in (result, alone))
        assert got.shape == (56, 48, 3) and np.abs(got - expected).max() <= 2


def test_openapi_describes_every_route_and_parameter(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    routes = {"/healthz", "/v1/styles", "/v1/styles/{name}", "/v1/stylize", "/v1/styles/{name}/thumbnail", "/"}
    assert routes <= set(paths)
    stylize = paths["/v1/stylize"]["post"]
    assert {p["name"] for p in stylize["parameters"]} == {"style", "alpha", "size", "style_weights", "preserve_color"}
    assert {"image/png", "image/jpeg"} <= set(stylize["responses"]["200"]["content"])
    assert {"400", "401", "404", "406", "408", "413"} <= set(stylize["responses"])
    # FastAPI's own rejections are answered 400 with our JSON error (test_bad_parameters_get_400_naming_them),
    # so no route promises a 422
    assert not [path for path, ops in paths.items() for op in ops.values() if "422" in op["responses"]]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "multipart/form-data" in stylize["requestBody"]["content"]
    assert "HTTPBearer" in json.dumps(schema["components"]["securitySchemes"])
    docs = client.get("/docs")
    assert docs.status_code == 200
    # served offline: Swagger UI's script and style come from this server, not a CDN
    scripts = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text)
    assert len(scripts) >= 2 and all(url.startswith("/") for url in scripts), scripts
    for url in scripts:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 1000


def test_the_proxys_own_errors_become_json_and_other_answers_pass_unchanged(monkeypatch):
    """adainrt.serve_proxy wraps Ray Serve's proxy: its plain-text errors (a 503 with Retry-After)
    and a request left unanswered (a replica killed mid-request) reach the client as JSON errors;
    an image and the app's own JSON errors pass through byte for byte."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    from adainrt.serve_proxy import CALLBACK, CALLBACK_ENV, LIMIT_ENV, NO_ANSWER, BodyLimit, JsonErrors, middlewares

    async def busy(_request):
        return PlainTextResponse("Request dropped due to backpressure", 503, headers={"Retry-After": "2"})

    async def image(_request):
        return Response(b"\x89PNG-bytes", media_type="image/png")

    async def refused(_request):
        return JSONResponse({"error": "style 'x' is not stored"}, 404)

    async def lost(scope, receive, send):  # the proxy after a replica died: returns, sends nothing
        return None

    routes = [Route("/busy", busy), Route("/image", image), Route("/refused", refused)]
    app = Starlette(routes=routes, middleware=middlewares())
    with TestClient(app) as client:
        answer = client.get("/busy")
        assert (answer.status_code, answer.json(), answer.headers["retry-after"]) == (
            503, {"error": "Request dropped due to backpressure"}, "2")
        assert client.get("/image").content == b"\x89PNG-bytes"
        assert client.get("/refused").json() == {"error": "style 'x' is not stored"}
    answer = TestClient(JsonErrors(lost)).get("/v1/stylize")  # no `with`: the bare app has no lifespan
    assert (answer.status_code, answer.json()) == (500, {"error": NO_ANSWER})
    from ray.serve._private.utils import call_function_from_import_path  # how Ray Serve's proxy reads CALLBACK_ENV

    assert [m.cls for m in call_function_from_import_path(CALLBACK)] == [JsonErrors]
    assert CALLBACK_ENV == "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
    monkeypatch.setenv(LIMIT_ENV, "1000")
    assert [m.cls for m in call_function_from_import_path(CALLBACK)] == [JsonErrors, BodyLimit]


def test_the_proxys_body_limit_stops_reading_at_the_limit_though_the_app_reads_eagerly():
    """Ray Serve's proxy reads a body as fast as it comes, whether or not the app wants it (a 300 MB
    flood put +438 MB in the proxy and +313 MB in the replica). Behind BodyLimit, an eager reader
    gets no more than the limit (plus the one message that passed it); an app that does not answer
    then gets a JSON 413 answered for it, and a request answered before the limit (a 401) keeps its
    answer. Driven as ASGI directly: a 10 MB body in 10 KB messages, as a server delivers it."""
    from adainrt.serve_proxy import BodyLimit, JsonErrors, body_too_large

    def eager(answer_first: bool, read: list[int]):
        async def app(scope, receive, send):  # like the proxy: queue everything, answer when done
            if answer_first:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "key"}'})
            while (message := await receive())["type"] == "http.request":
                read.append(len(message.get("body", b"")))
                if not message.get("more_body"):
                    break
            if not answer_first:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"read it all"})
        return JsonErrors(BodyLimit(app, max_bytes=100_000, wait_s=0.5))

    def exchange(app, body_messages: int) -> tuple[int, bytes]:
        messages = [{"type": "http.request", "body": b"\0" * 10_000, "more_body": k < body_messages - 1}
                    for k in range(body_messages)]
        sent: list[dict] = []

        async def receive():
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        asyncio.run(app({"type": "http", "method": "POST", "path": "/v1/stylize", "headers": []}, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    read: list[int] = []
    assert exchange(eager(False, read), 1000) == (413, json.dumps({"error": body_too_large(100_000)}).encode())
    assert sum(read) <= 100_000 + 10_000
    read = []
    assert exchange(eager(True, read), 1000) == (401, b'{"error": "key"}') and sum(read) <= 110_000
    assert exchange(eager(False, []), 5) == (200, b"read it all")
