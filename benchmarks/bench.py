"""Latency and FPS of every backend present, beside the paper's figures.

Two paths are timed for each backend and size: ``full`` (content and style encoded every
frame, as the paper measured) and ``cached-style`` (style statistics computed once, then
encoder + decoder per frame, as a video at a fixed style runs). Inputs are the bundled
sample photos resized to size x size. Speed is measured here, never asserted in tests.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adainrt.images import bundled_sample, load_image, to_tensor
from adainrt.runtime.stylizer import InvalidArgument

#: The timed paths of one backend: "full" and "cached-style", each a call that runs once.
Calls = dict[str, Callable[[], object]]
#: The PyTorch eager baseline, timed beside the registered backends.
TORCH = "torch"
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


@contextlib.contextmanager
def runtime_calls(model_dir: Path, backend: str, size: int, precision: str) -> Iterator[Calls]:
    """The two timed paths of a runtime backend; its runners are freed when the block ends.

    "full": the one-graph export; "cached-style": the Stylizer's own path for a known style
    (encoder and decoder graphs, relu4_1 left on the device between them).
    """
    from adainrt.contract import verified_graphs
    from adainrt.runtime import StyleStats, Stylizer, open_graph

    content, style = sample_inputs(size)
    alpha = np.array([1.0], dtype=np.float32)
    with Stylizer(model_dir, backend, precision=precision) as stylizer, \
            open_graph(verified_graphs(model_dir, ("full",), precision)["full"], backend) as full:
        out = stylizer.style_graph.infer({"style": style})
        stats = StyleStats(out["style_mean"], out["style_std"])
        height_width = content.shape[-2:]

        def cached() -> object:
            return stylizer.decode(stylizer.encode(content, on_device=True), stats, 1.0, height_width)

        def whole() -> object:
            return full.infer({"content": content, "style": style, "alpha": alpha})["image"]

        yield {"full": whole, "cached-style": cached}


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


@contextlib.contextmanager
def backend_calls(model_dir: Path | None, backend: str, size: int, precision: str, encoder: str | None = None,
                  decoder: str | None = None) -> Iterator[Calls]:
    """The timed paths of one backend: torch eager, or any registered runtime backend."""
    if backend == TORCH:
        yield torch_calls(encoder, decoder, size)
        return
    with runtime_calls(model_dir, backend, size, precision) as calls:
        yield calls



def run_precision(backend: str, requested: str) -> str:
    """The precision a backend runs for a request: the one asked for if it runs it, else its own."""
    if backend == TORCH:
        return "fp32"
    from adainrt.runtime import get_backend

    chosen = get_backend(backend)
    return chosen.precision(requested if requested in chosen.precisions else None)[0]


def backend_label(backend: str, precision: str) -> str:
    """How tables name a backend: its precision appended unless FP32."""
    return backend if precision == "fp32" else f"{backend}-{precision}"


def select_backends(requested: Sequence[str]) -> list[str]:
    """``all``: every backend usable here plus torch eager; else the names given, checked."""
    from adainrt.runtime import available, get_backend

    if "all" in requested:
        return [*available(), TORCH]
    for name in requested:
        if name != TORCH:
            get_backend(name)
    return list(dict.fromkeys(requested))


def needed_precisions(backends: Sequence[str], precision: str) -> tuple[str, ...]:
    """The graph precisions a benchmark of these backends runs."""
    return tuple(dict.fromkeys(run_precision(b, precision) for b in backends if b != TORCH)) or (precision,)


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
    """Time each backend (registered or "torch") at each size; both paths each."""
    results = []
    for size in sizes:
        for backend in backends:
            used = run_precision(backend, precision)
            label = backend_label(backend, used)
            with backend_calls(model_dir, backend, size, used, encoder, decoder) as calls:
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
        """JSON-safe: identical outputs (infinite PSNR) give ``psnr_db: null``."""
        return {**asdict(self), "psnr_db": self.psnr_db if math.isfinite(self.psnr_db) else None}


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of an image in [0, 1] against the reference (both clipped to [0, 1], as saved)."""
    mse = float(np.mean((np.clip(output, 0, 1) - np.clip(reference, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def compare_targets(backends: Sequence[str], precisions: Sequence[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs to check: each runtime backend in each precision it runs and the
    folder holds; torch in FP32."""
    from adainrt.runtime import get_backend

    targets = []
    for backend in backends:
        runs = ("fp32",) if backend == TORCH else get_backend(backend).precisions
        targets += [(backend, p) for p in precisions if p in runs]
    return targets


def compare_backends(
    model_dir: Path, size: int, targets: list[tuple[str, str]], encoder: str | None = None,
    decoder: str | None = None,
) -> list[Fidelity]:
    """Each (backend, precision)'s full-graph output against FP32 onnxruntime CPU, as Polygraphy does."""
    with backend_calls(model_dir, "ort-cpu", size, "fp32") as calls:
        reference = np.asarray(calls["full"]())
    rows = []
    for backend, precision in targets:
        with backend_calls(model_dir, backend, size, precision, encoder, decoder) as calls:
            output = calls["full"]()
        output = output.numpy() if backend == TORCH else np.asarray(output)
        rows.append(Fidelity(backend_label(backend, precision), size, psnr(output, reference),
                             float(np.abs(output - reference).max())))
    return rows


def format_fidelity(rows: list[Fidelity]) -> str:
    lines = [f"{'backend':<13} {'size':>9} {'PSNR dB':>9} {'max abs':>10}   (vs FP32 onnxruntime CPU)"]
    for r in rows:
        db = f"{r.psnr_db:.1f}" if math.isfinite(r.psnr_db) else "identical"
        lines.append(f"{r.backend:<13} {f'{r.size}x{r.size}':>9} {db:>9} {r.max_abs_error:>10.2e}")
    return "\n".join(lines)


@dataclass(frozen=True)
class BenchPlan:
    """What one `adainrt bench` run measures, checked before anything is loaded."""

    sizes: tuple[int, ...]
    backends: list[str]
    runs: int
    warmup: int
    precision: str
    compare: bool

    @classmethod
    def make(cls, sizes: Sequence[int], backends: Sequence[str], runs: int = 10, warmup: int = 2,
             precision: str = "fp32", compare: bool = False) -> BenchPlan:
        from adainrt.contract import check_precision
        from adainrt.runtime.jobs import check_resize

        if runs < 1 or warmup < 0:
            raise InvalidArgument(f"timed runs must be >= 1 and warm-up runs >= 0, got {runs} and {warmup}")
        for size in sizes:
            if check_resize(size, "benchmark size") == 0:
                raise InvalidArgument("benchmark size 0: give a square size such as 256 or 512")
        return cls(tuple(sizes), select_backends(backends), runs, warmup, check_precision(precision), compare)

    def model_dir(self, model_dir: Path | None, encoder: str | None, decoder: str | None,
                  progress: Callable[[str], None] = lambda _msg: None) -> Path | None:
        """The graphs this plan runs: the folder given, or the weights' graphs exported once (full and
        split, in every precision the chosen backends run; both precisions to compare)."""
        from adainrt.runtime.jobs import ensure_model_dir

        if model_dir is None and all(b == TORCH for b in self.backends):
            return None
        precisions = ("fp32", "fp16") if self.compare else needed_precisions(self.backends, self.precision)
        return ensure_model_dir(model_dir, encoder, decoder, ("full", "split"), precisions, progress)


def compare_all(plan: BenchPlan, model_dir: Path, encoder: str | None = None, decoder: str | None = None,
                progress: Callable[[str], None] = lambda _msg: None) -> list[Fidelity]:
    """Every planned backend in every precision the folder holds, at every size, against FP32 onnxruntime."""
    from adainrt.contract import PRECISIONS, graph_file, read_manifest

    listed = read_manifest(model_dir)["graphs"]
    present = [p for p in PRECISIONS if graph_file("full", p) in listed]
    if "fp16" not in present:
        progress(f"no {graph_file('full', 'fp16')} in {model_dir}: comparing FP32 graphs only "
                 "(adainrt export --precision fp16 adds it)")
    targets = compare_targets(plan.backends, present)
    return [row for size in plan.sizes for row in compare_backends(model_dir, size, targets, encoder, decoder)]
