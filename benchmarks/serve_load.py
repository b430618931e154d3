"""Load test of an `adainrt serve` on this machine: throughput and latency per concurrency level.

Loopback addresses only (the server under test is ours), a bounded number of requests and a
time limit per level, and the in-process Stylizer's throughput on the same images beside it
(what serving costs).
"""

from __future__ import annotations

import concurrent.futures
import io
import ipaddress
import json
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from adainrt.client import ServerError, stylize_remote
from adainrt.errors import AdainrtError


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    throughput: float  # successful requests per second
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def as_dict(self) -> dict:
        return asdict(self)


def check_loopback(url: str) -> None:
    """Refuse any target but this machine's loopback: a load test sends traffic nowhere else."""
    host = urllib.parse.urlparse(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise AdainrtError(f"{url}: the load test only targets loopback addresses (127.0.0.0/8, ::1, localhost)")


def sample_request(size: int) -> bytes:
    """The bundled photo at size x size as PNG bytes."""
    from adainrt.images import bundled_sample, load_image

    buffer = io.BytesIO()
    load_image(bundled_sample("astronaut")).resize((size, size)).save(buffer, "PNG")
    return buffer.getvalue()


def run_level(url: str, style: str, content: bytes, concurrency: int, requests: int, size: int,
              api_key: str | None = None, time_limit: float = 300.0) -> LoadResult:
    """``requests`` requests, ``concurrency`` at a time; stops sending after ``time_limit`` seconds."""
    deadline = time.monotonic() + time_limit
    latencies, errors = [], 0

    def one(_k: int) -> float | None:
        if time.monotonic() > deadline:
            return None
        start = time.perf_counter()
        stylize_remote(url, content, style, size=size, api_key=api_key, timeout=time_limit)
        return (time.perf_counter() - start) * 1000.0

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(one, k) for k in range(requests)]:
            try:
                latency = future.result()
            except ServerError:
                errors += 1
                continue
            if latency is not None:
                latencies.append(latency)
    seconds = time.monotonic() - started
    times = np.array(latencies or [float("nan")])
    return LoadResult(concurrency, len(latencies) + errors, errors, seconds, len(latencies) / seconds,
                      *(float(np.percentile(times, q)) for q in (50, 95, 99)))


def in_process_throughput(model_dir: str, content: bytes, style_image: bytes, size: int, runs: int,
                          backend: str = "auto") -> float:
    """Images per second of the Stylizer itself on the same content (style cached)."""
    from adainrt.images import decode_image
    from adainrt.runtime import Stylizer

    with Stylizer(model_dir, backend) as stylizer:
        stats = stylizer.style_stats(decode_image(style_image, "style"))
        image = decode_image(content, "content")
        stylizer.stylize(image, stats)
        start = time.perf_counter()
        for _ in range(runs):
            stylizer.stylize(image, stats)
        return runs / (time.perf_counter() - start)


def format_results(results: Sequence[LoadResult], in_process: float | None) -> str:
    lines = [f"{'concurrency':>11} {'requests':>8} {'errors':>6} {'req/s':>7} "
             f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"]
    for r in results:
        lines.append(f"{r.concurrency:>11} {r.requests:>8} {r.errors:>6} {r.throughput:>7.2f} {r.p50_ms:>8.1f} "
                     f"{r.p95_ms:>8.1f} {r.p99_ms:>8.1f}")
    if in_process is not None:
        lines.append(f"in-process Stylizer, same images: {in_process:.2f} images/s")
    return "\n".join(lines)


@dataclass
class LoadTest:
    """`adainrt bench-serve`'s results: one row per concurrency level, and the in-process Stylizer's
    images per second on the same images when a model folder was given."""

    levels: list[LoadResult]
    in_process_images_per_s: float | None = None

    def report(self, as_json: bool = False) -> str:
        if as_json:
            return json.dumps({"levels": [r.as_dict() for r in self.levels],
                               "in_process_images_per_s": self.in_process_images_per_s}, indent=2)
        return format_results(self.levels, self.in_process_images_per_s)
