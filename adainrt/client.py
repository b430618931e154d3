"""A small client of `adainrt serve` (standard library only): what `adainrt stylize --server` uses."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence

from adainrt.errors import AdainrtError


class ServerError(AdainrtError):
    """The server answered with an error (its message and status), or could not be reached."""


def _request(url: str, body: bytes | None, headers: dict[str, str], timeout: float) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise ServerError(f"{url}: {exc.code} {message}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(f"{url}: cannot reach the server ({exc})") from exc


def stylize_remote(server: str, content: bytes, style: str | bytes, alpha: float = 1.0, size: int = 512,
                   api_key: str | None = None, jpeg: bool = False, timeout: float = 300.0,
                   style_weights: Sequence[float] | None = None, preserve_color: str | None = None) -> bytes:
    """The stylized image's bytes (PNG, or JPEG) from a server: ``style`` is a stored style's name
    (or several, comma-separated) or a style image's bytes (sent as multipart)."""
    query: dict[str, object] = {"alpha": alpha, "size": size}
    if style_weights:
        query["style_weights"] = ",".join(str(w) for w in style_weights)
    if preserve_color:
        query["preserve_color"] = preserve_color
    headers = {"Accept": "image/jpeg" if jpeg else "image/png"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if isinstance(style, str):
        query["style"] = style
        body = content
        headers["Content-Type"] = "application/octet-stream"
    else:
        boundary = uuid.uuid4().hex
        body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
                        for name, data in (("content", content), ("style", style))) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    url = f"{server.rstrip('/')}/v1/stylize?{urllib.parse.urlencode(query)}"
    return _request(url, body, headers, timeout)


def list_styles(server: str, api_key: str | None = None, timeout: float = 30.0) -> list[str]:
    """The names of the styles stored on the server."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return json.loads(_request(f"{server.rstrip('/')}/v1/styles", None, headers, timeout))


def add_style(server: str, name: str, image: bytes, api_key: str | None = None, timeout: float = 300.0,
              exist_ok: bool = True) -> None:
    """Store a style image's statistics on the server under ``name`` (already there: fine with ``exist_ok``)."""
    headers = {"Content-Type": "application/octet-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        _request(f"{server.rstrip('/')}/v1/styles/{urllib.parse.quote(name)}", image, headers, timeout)
    except ServerError as exc:
        if not (exist_ok and ": 409 " in str(exc)):
            raise
