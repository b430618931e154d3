"""Latency and FPS of every backend present, beside the paper's figures.

Two paths are timed for each network variant, backend and size: ``full`` (content and style encoded every
frame, as the paper measured) and ``cached-style`` (style statistics computed once, then
encoder + decoder per frame, as a video at a fixed style runs). Inputs are the bundled
sample photos resized to size x size. Variants (full, lite) are timed in one interleaved run, each
row with the variant's cost (GMAC of encoder + decoder at the size). Speed is measured here,
never asserted in tests.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from adainrt.hardware import describe_cpu
from adainrt.images import bundled_sample, load_image, to_tensor
from adainrt.runtime.stylizer import InvalidArgument
from adainrt.spec import DEFAULT_VARIANT, check_variant

#: The timed paths of one backend: "full" and "cached-style", each a call that runs once.
Calls = dict[str, Callable[[], object]]
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
    #: This path's output vs the FP32 reference_backend()'s full path; None: not measured (JSON null: also identical).
    psnr_db: float | None = None
    variant: str = DEFAULT_VARIANT
    #: Multiply-accumulates (10^9) of the path at this size: encoder + decoder, plus the style's encoding on
    #: the full path (the variant's own cost, whatever the backend).
    gmac: float | None = None

    def as_dict(self) -> dict:
        psnr_db = self.psnr_db if self.psnr_db is not None and math.isfinite(self.psnr_db) else None
        return {**asdict(self), "psnr_db": psnr_db}


def sample_inputs(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Content and style arrays (1, 3, size, size) from the bundled samples."""
    content = load_image(bundled_sample("astronaut")).resize((size, size))
    style = load_image(bundled_sample("coffee")).resize((size, size))
    return to_tensor(content), to_tensor(style)


def summarize(backend: str, path: str, size: int, times: np.ndarray, psnr_db: float | None = None,
              variant: str = DEFAULT_VARIANT) -> Timing:
    mean = float(times.mean())
    return Timing(backend, path, size, len(times), float(np.percentile(times, 50)),
                  float(np.percentile(times, 95)), mean, 1000.0 / mean, PAPER_FPS.get(size), psnr_db, variant,
                  path_gmac(variant, path, size))


def path_gmac(variant: str, path: str, size: int) -> float:
    """A timed path's multiply-accumulates (10^9): content through encoder and decoder, and on the full
    path the style (same size) through the encoder too."""
    spec = check_variant(variant)
    cost = spec.gmac(size, size)
    if path == "full":
        cost += spec.encoder_gmac(size, size)
    return round(cost, 2)


@contextlib.contextmanager
def runtime_calls(model_dir: Path, backend: str, size: int, precision: str) -> Iterator[Calls]:
    """The two timed paths of a runtime backend; its runners are freed when the block ends.

    "full": the one-graph export; "cached-style": the Stylizer's own path for a known style
    (encoder and decoder graphs, relu4_1 left on the device between them).
    """
    from adainrt.contract import graph_precision, verified_graphs
    from adainrt.runtime import StyleStats, Stylizer, open_graph

    content, style = sample_inputs(size)
    alpha = np.array([1.0], dtype=np.float32)
    full_graph = verified_graphs(model_dir, ("full",), graph_precision(precision))["full"]
    with Stylizer(model_dir, backend, precision=precision) as stylizer, \
            open_graph(full_graph, backend, precision) as full:
        out = stylizer.style_graph.infer({"style": style})
        stats = StyleStats(out["style_mean"], out["style_std"])
        height_width = content.shape[-2:]

        def cached() -> object:
            return stylizer.decode(stylizer.encode(content, on_device=True), stats, 1.0, height_width)

        def whole() -> object:
            return full.infer({"content": content, "style": style, "alpha": alpha})["image"]

        yield {"full": whole, "cached-style": cached}


def run_precision(backend: str, requested: str | None) -> str:
    """The precision a backend runs for a request: the one asked for if it runs it, else its own."""
    from adainrt.runtime import get_backend

    chosen = get_backend(backend)
    return chosen.precision(requested if requested in chosen.usable_precisions() else None)[0]


def bench_targets(backends: Sequence[str], precision: str | None = None) -> list[tuple[str, str]]:
    """(backend, precision) pairs to time: with ``precision``, each backend in it where it runs it (else
    in its own); without, each backend in every precision worth running here (its default, and
    for openvino f32 beside bf16)."""
    from adainrt.runtime import get_backend

    targets = []
    for backend in backends:
        if precision is not None:
            targets.append((backend, run_precision(backend, precision)))
            continue
        chosen = get_backend(backend)
        default = chosen.precision()[0]
        targets += [(backend, p) for p in dict.fromkeys([*chosen.bench_precisions, default])
                    if p == default or p in chosen.usable_precisions()]
    return targets


def backend_label(backend: str, precision: str) -> str:
    """How tables name a backend: its precision appended unless FP32."""
    return backend if precision == "fp32" else f"{backend}-{precision}"


def select_backends(requested: Sequence[str]) -> list[str]:
    """``all``: every backend usable here (torch eager among them where torch is installed); else the
    names given, checked."""
    from adainrt.runtime import available, get_backend

    if "all" in requested:
        return available()
    for name in requested:
        get_backend(name)
    return list(dict.fromkeys(requested))


def needed_precisions(targets: Sequence[tuple[str, str]]) -> tuple[str, ...]:
    """The graph precisions a benchmark of these targets loads (fp32 always: the PSNR reference)."""
    from adainrt.contract import graph_precision

    return tuple(dict.fromkeys(["fp32", *(graph_precision(p) for _b, p in targets)]))


def run_benchmark(
    models: Mapping[str, Path],
    sizes: Sequence[int],
    targets: Sequence[tuple[str, str]],
    runs: int = 10,
    warmup: int = 2,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[Timing]:
    """Time every variant (``models``: variant -> its graphs folder) on every
    (backend, precision) at each size, both paths, interleaved: round after round, each one runs once
    in turn, so a change in the machine's load touches every row alike. Each row carries the PSNR of
    its own output against its variant's :func:`reference_output`."""
    results = []
    for size in sizes:
        with contextlib.ExitStack() as stack:
            calls: dict[tuple[str, str, str], Calls] = {}
            references = {}
            for variant, model_dir in models.items():
                for backend, precision in targets:
                    progress(f"loading {variant} on {backend_label(backend, precision)} at {size}x{size}")
                    calls[(variant, backend, precision)] = stack.enter_context(
                        runtime_calls(model_dir, backend, size, precision))
                references[variant] = reference_output(model_dir, size)
            progress(f"{size}x{size}: {warmup} warm-up + {runs} timed rounds over {len(calls)} variant/backend pairs")
            times = _interleaved(calls, runs, warmup)
            for (variant, backend, precision), paths in calls.items():
                reference = references[variant]
                for path, call in paths.items():  # both paths make the same image of the same inputs
                    results.append(summarize(backend_label(backend, precision), path, size,
                                             times[((variant, backend, precision), path)],
                                             psnr(_as_array(call()), reference), variant))
    return results


def reference_output(model_dir: Path, size: int) -> np.ndarray:
    """The FP32 reference's full-path output on the sample inputs (its runners freed before timing)."""
    with runtime_calls(model_dir, reference_backend(), size, "fp32") as calls:
        return _as_array(calls["full"]())


def reference_backend() -> str:
    """What outputs are compared against: the registry's FP32 reference (onnxruntime CPU, or OpenVINO
    f32 where onnxruntime is absent; each backend says whether it can be the reference)."""
    from adainrt.runtime.backend import reference_backend as reference

    return reference().name


def _as_array(output: object) -> np.ndarray:
    return output.numpy() if hasattr(output, "numpy") else np.asarray(output)


def _interleaved(calls: Mapping[Hashable, Calls], runs: int, warmup: int) -> dict[tuple[Hashable, str], np.ndarray]:
    """Per (key, path), the milliseconds of ``runs`` rounds, each round running every call once in turn."""
    for paths in calls.values():
        for fn in paths.values():
            for _ in range(warmup):
                fn()
    times = {(key, path): np.empty(runs) for key, paths in calls.items() for path in paths}
    for i in range(runs):
        for key, paths in calls.items():
            for path, fn in paths.items():
                start = time.perf_counter()
                fn()
                times[(key, path)][i] = (time.perf_counter() - start) * 1000.0
    return times


def format_table(results: list[Timing]) -> str:
    lines = [f"{'variant':<8} {'backend':<15} {'path':<13} {'size':>9} {'GMAC':>7} {'p50 ms':>9} {'p95 ms':>9} "
             f"{'FPS':>8} {'paper FPS':>10} {'PSNR dB':>9}"]
    for r in results:
        paper = f"{r.paper_fps:.0f}" if r.paper_fps and r.path == "full" else "-"
        db = "-" if r.psnr_db is None else ("identical" if not math.isfinite(r.psnr_db) else f"{r.psnr_db:.1f}")
        gmac = "-" if r.gmac is None else f"{r.gmac:.1f}"
        lines.append(f"{r.variant:<8} {r.backend:<15} {r.path:<13} {f'{r.size}x{r.size}':>9} {gmac:>7} "
                     f"{r.p50_ms:>9.1f} {r.p95_ms:>9.1f} {r.fps:>8.2f} {paper:>10} {db:>9}")
    lines.append("paper: Huang & Belongie 2017, Pascal Titan X GPU, Torch7, full path incl. style encoding")
    lines.append(f"PSNR: each path's output against {reference_backend()}'s full path in FP32 on the same inputs "
                 "(of the same variant)")
    lines.append(f"machine: {describe_cpu()}")
    return "\n".join(lines)


@dataclass
class Fidelity:
    backend: str
    size: int
    psnr_db: float
    max_abs_error: float
    variant: str = DEFAULT_VARIANT

    def as_dict(self) -> dict:
        """JSON-safe: identical outputs (infinite PSNR) give ``psnr_db: null``."""
        return {**asdict(self), "psnr_db": self.psnr_db if math.isfinite(self.psnr_db) else None}


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of an image in [0, 1] against the reference (both clipped to [0, 1], as saved)."""
    mse = float(np.mean((np.clip(output, 0, 1) - np.clip(reference, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def compare_targets(backends: Sequence[str], precisions: Sequence[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs to check: each runtime backend in each precision it runs whose
    graphs the folder holds (``precisions``: graph precisions)."""
    from adainrt.contract import graph_precision
    from adainrt.runtime import get_backend

    targets = []
    for backend in backends:
        targets += [(backend, p) for p in get_backend(backend).usable_precisions() if graph_precision(p) in precisions]
    return targets


def compare_backends(
    model_dir: Path, size: int, targets: list[tuple[str, str]], variant: str = DEFAULT_VARIANT,
) -> list[Fidelity]:
    """Each (backend, precision)'s full-graph output against :func:`reference_output`, as Polygraphy does."""
    reference = reference_output(model_dir, size)
    rows = []
    for backend, precision in targets:
        with runtime_calls(model_dir, backend, size, precision) as calls:
            output = _as_array(calls["full"]())
        rows.append(Fidelity(backend_label(backend, precision), size, psnr(output, reference),
                             float(np.abs(output - reference).max()), variant))
    return rows


def format_fidelity(rows: list[Fidelity]) -> str:
    lines = [f"{'variant':<8} {'backend':<13} {'size':>9} {'PSNR dB':>9} {'max abs':>10}   "
             f"(vs {reference_backend()} FP32)"]
    for r in rows:
        db = f"{r.psnr_db:.1f}" if math.isfinite(r.psnr_db) else "identical"
        lines.append(f"{r.variant:<8} {r.backend:<13} {f'{r.size}x{r.size}':>9} {db:>9} {r.max_abs_error:>10.2e}")
    return "\n".join(lines)


@dataclass(frozen=True)
class BenchPlan:
    """What one `adainrt bench` run measures, checked before anything is loaded."""

    sizes: tuple[int, ...]
    backends: list[str]
    runs: int
    warmup: int
    targets: list[tuple[str, str]]
    compare: bool
    variants: tuple[str | None, ...] = (None,)  # None: the model folder's or the weights' own

    @classmethod
    def make(cls, sizes: Sequence[int], backends: Sequence[str], runs: int = 10, warmup: int = 2,
             precision: str | None = None, compare: bool = False,
             variants: Sequence[str] = ()) -> BenchPlan:
        from adainrt.contract import check_execution_precision
        from adainrt.images import check_resize

        if runs < 1 or warmup < 0:
            raise InvalidArgument(f"timed runs must be >= 1 and warm-up runs >= 0, got {runs} and {warmup}")
        for size in sizes:
            if check_resize(size, "benchmark size") == 0:
                raise InvalidArgument("benchmark size 0: give a square size such as 256 or 512")
        if precision is not None:
            check_execution_precision(precision)
        chosen = select_backends(backends)
        for variant in variants:
            check_variant(variant)
        return cls(tuple(sizes), chosen, runs, warmup, bench_targets(chosen, precision), compare,
                   tuple(dict.fromkeys(variants)) or (None,))

    def models(self, model_dir: Path | None, encoder: str | None, decoder: str | None,
               progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Path]:
        """variant -> the graphs this plan runs for it: the folder given, or the weights' graphs exported
        once (full and split, in every precision the chosen backends run; both precisions to compare)."""
        from adainrt.contract import manifest_variant, read_manifest
        from adainrt.export.cache import cached_model_dir
        from adainrt.runtime.jobs import ensure_model_dir

        if len(self.variants) > 1 and (model_dir is not None or encoder is not None or decoder is not None):
            raise InvalidArgument("a model folder or weight file is one variant: leave them out to time several "
                                  "variants (their bundled weights), or give one variant")
        precisions = ("fp32", "fp16") if self.compare else needed_precisions(self.targets)
        models: dict[str, Path] = {}
        for variant in self.variants:
            folder = ensure_model_dir(model_dir, encoder, decoder, ("full", "split"), precisions, progress,
                                      cached_model_dir, variant)
            models[manifest_variant(read_manifest(folder)).name] = folder
        return models


def compare_all(plan: BenchPlan, models: Mapping[str, Path],
                progress: Callable[[str], None] = lambda _msg: None) -> list[Fidelity]:
    """Every planned backend in every precision each variant's folder holds, at every size, against the
    FP32 reference of the same variant."""
    from adainrt.contract import PRECISIONS, graph_file, read_manifest

    rows = []
    for variant, model_dir in models.items():
        listed = read_manifest(model_dir)["graphs"]
        present = [p for p in PRECISIONS if graph_file("full", p) in listed]
        if "fp16" not in present:
            progress(f"no {graph_file('full', 'fp16')} in {model_dir}: comparing FP32 graphs only "
                     "(adainrt export --precision fp16 adds it)")
        targets = compare_targets(plan.backends, present)
        rows += [row for size in plan.sizes
                 for row in compare_backends(model_dir, size, targets, variant)]
    return rows


@dataclass
class BenchReport:
    """`adainrt bench`'s rows: timings, or with ``compare`` the fidelity of each backend's outputs."""

    rows: list[Timing] | list[Fidelity]
    compare: bool = False

    def report(self, as_json: bool = False) -> str:
        if as_json:
            import json

            return json.dumps([r.as_dict() for r in self.rows], indent=2)
        return format_fidelity(self.rows) if self.compare else format_table(self.rows)
