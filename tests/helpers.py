"""What tests share, in one place: generated (tiny, photo-like) images, one PSNR, one way to mark GPU
tests, the CLI on a read-only file system, a real `adainrt serve` on 127.0.0.1.

Fixtures stay in conftest.py (pytest finds them there); plain functions and constants live here and
are imported by name (``from tests.helpers import psnr``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# CLI runs against the FP32 test graphs pin the FP32 reference backend: `auto` picks TensorRT (FP16
# graphs only) on a GPU host and OpenVINO bf16 on a bf16 CPU, so the same test would run elsewhere.
ORT_CPU = ("--backend", "ort-cpu")


def folder_state(folder: Path) -> dict[str, int]:
    """Names and modification times of ``folder``'s entries (files vanish while a run renames them)."""
    state = {}
    for entry in folder.iterdir() if folder.exists() else []:
        with contextlib.suppress(FileNotFoundError):
            state[entry.name] = entry.stat().st_mtime_ns
    return state

#: Prepended to a subprocess script: any import of torch fails there.
NO_TORCH_PRELUDE = """
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
"""

Test = TypeVar("Test", bound=Callable)


def synthetic_image(height: int, width: int, seed: int = 0) -> Image.Image:
    """A photo-like test image: smooth colour gradients, a few discs, mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width, y / height, 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=-1)
    for _ in range(4):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(5, min(height, width) / 3)
        img[(y - cy) ** 2 + (x - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8), "RGB")


def psnr(a: np.ndarray, b: np.ndarray, peak: float | None = None) -> float:
    """PSNR in dB of ``a`` against ``b``, computed in float64; infinite when they are equal. ``peak`` is the
    largest value an image can take: 255 for uint8 arrays, 1 for images in [0, 1] (the default for
    floats); a test comparing raw graph outputs passes the reference's range."""
    a, b = np.asarray(a), np.asarray(b)
    if peak is None:
        peak = 255.0 if a.dtype == np.uint8 or b.dtype == np.uint8 else 1.0
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def gpu(why_not: str | None) -> Callable[[Test], Test]:
    """The one way a test is marked as needing a GPU: the ``gpu`` marker (select or deselect with -m), and
    skipped with ``why_not`` as the reason when that is not None."""

    def mark(test: Test) -> Test:
        return pytest.mark.gpu(pytest.mark.skipif(why_not is not None, reason=str(why_not))(test))

    return mark


def tensorrt_and_gpu() -> str | None:
    """Why native TensorRT tests cannot run here, or None when they can (the backend's own probe)."""
    from adainrt.runtime import get_backend

    return get_backend("tensorrt").why_not()


def needs_backend(name: str) -> Callable[[Test], Test]:
    """Skipped, with the reason, where the backend cannot run here; marked ``gpu`` when it runs on one."""
    from adainrt.runtime import get_backend

    backend = get_backend(name)
    if backend.device == "cuda":
        return gpu(backend.why_not())
    return pytest.mark.skipif(backend.why_not() is not None, reason=f"backend {name}: {backend.why_not()}")


def read_only_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The CLI in a private mount namespace where ``tmp_path/ro`` is a read-only file system (skipped
    where unshare(1) or the mount is not allowed)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only file system")
    (tmp_path / "ro").mkdir()
    command = f'mount -t tmpfs -o ro none "{tmp_path}/ro" && exec "$@"'
    cli = [sys.executable, "-c", "from adainrt.cli import main; main()", *args]
    result = subprocess.run(["unshare", "-m", "sh", "-c", command, "sh", *cli], capture_output=True, text=True,
                            timeout=300)
    if "mount" in result.stderr and "permission denied" in result.stderr.lower():
        pytest.skip(f"cannot mount a read-only file system here: {result.stderr.strip()}")
    return result


def http_call(url: str, body: bytes | None = None, key: str | None = None, method: str | None = None,
              headers: dict | None = None) -> tuple[int, object, bytes]:
    """(status, headers, body) of one HTTP request; an error status is returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"),
                                     headers={**({"Authorization": f"Bearer {key}"} if key else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def started_server(args: list[str], bank: Path, startup_s: float = 240) -> tuple[subprocess.Popen, str]:
    """`adainrt serve ARGS` on a free port of 127.0.0.1 with its style bank in ``bank``, once /healthz
    answers: (the process, its URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ADAINRT_STYLES": str(bank), "RAY_DEDUP_LOGS": "0"}
    process = subprocess.Popen([sys.executable, "-m", "adainrt.cli", "serve", "--port", str(port), *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        try:
            if http_call(f"{url}/healthz")[0] == 200:
                return process, url
        except OSError:
            pass
        if process.poll() is not None:
            pytest.fail(f"adainrt serve exited: {process.stdout.read()}")
        time.sleep(1)
    process.kill()
    pytest.fail(f"adainrt serve did not become healthy in {startup_s:g} s")


def stopped(process: subprocess.Popen, timeout_s: float = 90) -> None:
    """SIGTERM, as `docker stop` or systemd send it: the server must exit 0 within ``timeout_s``."""
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=timeout_s) == 0, process.stdout.read()
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"adainrt serve did not stop within {timeout_s:g} s of SIGTERM")


@contextlib.contextmanager
def running_server(args: list[str], bank: Path, startup_s: float = 240) -> Iterator[str]:
    """:func:`started_server` for a ``with`` block: yields its URL, then :func:`stopped`."""
    process, url = started_server(args, bank, startup_s)
    yield url
    stopped(process)
