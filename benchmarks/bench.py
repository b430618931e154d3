"""Latency and FPS of every backend present, beside the paper's figures.

Two paths are timed for each backend and size: ``full`` (content and style encoded every
frame, as the paper measured) and ``cached-style`` (style statistics computed once, then
encoder + decoder per frame, as a video at a fixed style runs). Inputs are the bundled
sample photos resized to size x size. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adainrt.images import bundled_sample, load_image, to_tensor

#: Huang & Belongie 2017, Pascal Titan X, Torch7, including style encoding.
PAPER_FPS = {256: 56.0, 512: 15.0}


@dataclass
class Timing:
    backend: str
    path: str  # "full" or "cached-style"
    size: int
    runs: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    fps: float
    paper_fps: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def sample_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Content and style arrays (1, 3, size, size) from the bundled samples."""
    content = load_image(bundled_sample("astronaut")).resize((size, size))
    style = load_image(bundled_sample("coffee")).resize((size, size))
    return to_tensor(content), to_tensor(style)


def time_call(fn: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Wall-clock milliseconds of ``runs`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        fn()
        times[i] = (time.perf_counter() - start) * 1000.0
    return times


def summarize(backend: str, path: str, size: int, times: np.ndarray) -> Timing:
    mean = float(times.mean())
    return Timing(backend, path, size, len(times), float(np.percentile(times, 50)),
                  float(np.percentile(times, 95)), mean, 1000.0 / mean, PAPER_FPS.get(size))


def ort_calls(model_dir: Path, backend: str, size: int, precision: str = "fp32") -> dict[str, Callable[[], object]]:
    """The two timed paths over onnxruntime for one backend."""
    from adainrt.runtime.providers import choose_backend
    from adainrt.runtime.stylizer import OrtGraph, Stylizer, graph_file

    full = OrtGraph(model_dir / graph_file("full", precision), choose_backend(backend))
    return _graph_calls(full, Stylizer(model_dir, backend, precision=precision), size)


def engine_calls(model_dir: Path, size: int) -> dict[str, Callable[[], object]]:
    """The two timed paths over native TensorRT engines of the FP16 graphs (built once, cached)."""
    from adainrt.runtime.stylizer import Stylizer, graph_file
    from adainrt.runtime.tensorrt_engine import TensorRTRunner, cached_engine

    full = TensorRTRunner(cached_engine(model_dir / graph_file("full", "fp16")))
    return _graph_calls(full, Stylizer(model_dir, "tensorrt"), size)


def _graph_calls(full, stylizer, size: int) -> dict[str, Callable[[], object]]:
    """"full": the one-graph export; "cached-style": the Stylizer's own path for a known style
    (encoder and decoder graphs, relu4_1 left on the device between them)."""
    from adainrt.runtime.controls import StyleStats

    content, style = sample_inputs(size)
    alpha = np.array([1.0], dtype=np.float32)
    stats = StyleStats(*stylizer.style_graph.run(style=style))
    height_width = content.shape[-2:]

    def cached() -> object:
        return stylizer.decode(stylizer.encode(content, on_device=True), stats, 1.0, height_width)

    return {"full": lambda: full.run(content=content, style=style, alpha=alpha), "cached-style": cached}


def torch_calls(encoder_path: str | None, decoder_path: str | None, size: int) -> dict[str, Callable[[], object]]:
    """The same two paths in PyTorch eager (the peer implementations' way)."""
    import torch

    from adainrt.export.cache import load_model

    model, _ = load_model(encoder_path, decoder_path)
    content, style = (torch.from_numpy(a) for a in sample_inputs(size))
    alpha = torch.ones(1)
    with torch.no_grad():
        mean, std = model.style_stats(style)

    def full() -> object:
        with torch.no_grad():
            return model(content, style, alpha)

    def cached() -> object:
        with torch.no_grad():
            return model.decode(model.encode_content(content), mean, std, alpha)

    return {"full": full, "cached-style": cached}


def backend_calls(model_dir: Path, backend: str, size: int, precision: str = "fp32", encoder: str | None = None,
                  decoder: str | None = None) -> dict[str, Callable[[], object]]:
    """The timed paths of one backend: torch eager, native TensorRT engines (always FP16), or onnxruntime."""
    if backend == "torch":
        return torch_calls(encoder, decoder, size)
    if backend == "tensorrt":
        return engine_calls(model_dir, size)
    return ort_calls(model_dir, backend, size, precision)


def backend_label(backend: str, precision: str) -> str:
    """How tables name a backend: its precision appended unless FP32 (torch: FP32; tensorrt: FP16)."""
    precision = {"torch": "fp32", "tensorrt": "fp16"}.get(backend, precision)
    return backend if precision == "fp32" else f"{backend}-{precision}"


def run_benchmark(
    model_dir: Path,
    sizes: list[int],
    backends: list[str],
    runs: int = 10,
    warmup: int = 2,
    encoder: str | None = None,
    decoder: str | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
    precision: str = "fp32",
) -> list[Timing]:
    """Time each backend ("ort-*" or "torch") at each size; both paths each."""
    results = []
    for size in sizes:
        for backend in backends:
            calls = backend_calls(model_dir, backend, size, precision, encoder, decoder)
            label = backend_label(backend, precision)
            for path, fn in calls.items():
                progress(f"{label} {path} {size}x{size}: {warmup} warm-up + {runs} timed runs")
                results.append(summarize(label, path, size, time_call(fn, runs, warmup)))
    return results


def format_table(results: list[Timing]) -> str:
    lines = [f"{'backend':<13} {'path':<13} {'size':>9} {'p50 ms':>9} {'p95 ms':>9} {'FPS':>8} {'paper FPS':>10}"]
    for r in results:
        paper = f"{r.paper_fps:.0f}" if r.paper_fps else "-"
        lines.append(f"{r.backend:<13} {r.path:<13} {f'{r.size}x{r.size}':>9} {r.p50_ms:>9.1f} "
                     f"{r.p95_ms:>9.1f} {r.fps:>8.2f} {paper:>10}")
    lines.append("paper: Huang & Belongie 2017, Pascal Titan X GPU, Torch7, full path incl. style encoding")
    lines.append(f"machine: {platform.processor() or platform.machine()}, {_cpu_count()} CPU threads")
    return "\n".join(lines)


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class Fidelity:
    backend: str
    size: int
    psnr_db: float
    max_abs_error: float

    def as_dict(self) -> dict:
        return asdict(self)


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of an image in [0, 1] against the reference (both clipped to [0, 1], as saved)."""
    mse = float(np.mean((np.clip(output, 0, 1) - np.clip(reference, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def compare_backends(
    model_dir: Path, size: int, targets: list[tuple[str, str]], encoder: str | None = None,
    decoder: str | None = None,
) -> list[Fidelity]:
    """Each (backend, precision)'s full-graph output against FP32 onnxruntime CPU, as Polygraphy does."""
    reference = np.asarray(ort_calls(model_dir, "ort-cpu", size)["full"]()[0])
    rows = []
    for backend, precision in targets:
        output = backend_calls(model_dir, backend, size, precision, encoder, decoder)["full"]()
        output = output.numpy() if backend == "torch" else np.asarray(output[0])
        rows.append(Fidelity(backend_label(backend, precision), size, psnr(output, reference),
                             float(np.abs(output - reference).max())))
    return rows


def format_fidelity(rows: list[Fidelity]) -> str:
    lines = [f"{'backend':<13} {'size':>9} {'PSNR dB':>9} {'max abs':>10}   (vs FP32 onnxruntime CPU)"]
    for r in rows:
        lines.append(f"{r.backend:<13} {f'{r.size}x{r.size}':>9} {r.psnr_db:>9.1f} {r.max_abs_error:>10.2e}")
    return "\n".join(lines)
