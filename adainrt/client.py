"""A small client of `adainrt serve` (standard library only): what `adainrt stylize --server` uses."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from adainrt.errors import AdainrtError, ImageError


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


def check_api_key(key: str | None) -> str | None:
    """A key an HTTP header can carry, or None for no key. An empty one is refused: `--api-key ''`
    is most often an unset variable in a script, and it would open the server to anyone."""
    if key is None:
        return None
    if not key.strip():
        raise AdainrtError("the API key is empty (an unset variable?); give a real key, or leave --api-key out "
                           "to serve without one")
    try:
        key.encode("latin-1")
    except UnicodeEncodeError:
        raise AdainrtError("the API key has characters an HTTP header cannot carry (only Latin-1); use letters, "
                           "digits and punctuation") from None
    if any(ch in key for ch in "\r\n\0") or key != key.strip():
        raise AdainrtError("the API key has a line break, NUL or surrounding spaces, which an HTTP header cannot "
                           "carry; use letters, digits and punctuation")
    return key


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The Authorization header for ``api_key``; a key no HTTP header can carry (a newline, a
    non-Latin-1 character) is refused here in words rather than by http.client in a traceback."""
    return {"Authorization": f"Bearer {check_api_key(api_key)}"} if api_key else {}


def output_format(path: str | Path) -> str:
    """The image format an output file's suffix asks for (Pillow's name), as a local run writes it;
    an unknown suffix is refused before anything is sent."""
    from PIL import Image

    from adainrt.images import IMAGE_SUFFIXES

    fmt = Image.registered_extensions().get(Path(path).suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    return fmt


def save_served(data: bytes, path: str | Path, overwrite: bool = False) -> None:
    """Write a served image (PNG or JPEG bytes) in the format ``path``'s suffix asks for: as it came
    when the formats agree, converted otherwise (a .webp gets WebP, not PNG bytes under that name)."""
    import io

    from PIL import Image

    from adainrt.fileio import atomic_write_bytes
    from adainrt.images import save_image

    with Image.open(io.BytesIO(data)) as image:
        if image.format == output_format(path):
            atomic_write_bytes(path, data, overwrite=overwrite)
        else:
            save_image(image.convert("RGB"), path, overwrite=overwrite)


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
    headers = {"Accept": "image/jpeg" if jpeg else "image/png", **auth_headers(api_key)}
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
    headers = auth_headers(api_key)
    return json.loads(_request(f"{server.rstrip('/')}/v1/styles", None, headers, timeout))


def add_style(server: str, name: str, image: bytes, api_key: str | None = None, timeout: float = 300.0,
              exist_ok: bool = True) -> None:
    """Store a style image's statistics on the server under ``name`` (already there: fine with ``exist_ok``)."""
    headers = {"Content-Type": "application/octet-stream", **auth_headers(api_key)}
    try:
        _request(f"{server.rstrip('/')}/v1/styles/{urllib.parse.quote(name)}", image, headers, timeout)
    except ServerError as exc:
        if not (exist_ok and ": 409 " in str(exc)):
            raise
