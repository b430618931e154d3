"""`adainrt bench` and `adainrt bench-serve` as one call each: the measurement, and the plot when
one is asked for (the plots module sits above the measurements, so the entry points sit above both)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from adainrt.benchmarks.bench import BenchPlan, BenchReport, compare_all, run_benchmark
from adainrt.benchmarks.plot import plot_fps, plot_serve
from adainrt.benchmarks.serve_load import (
    LoadTest,
    check_loopback,
    in_process_throughput,
    run_level,
    sample_request,
)
from adainrt.client import add_style
from adainrt.errors import AdainrtError, OutputExists
from adainrt.images import bundled_sample


def bench(sizes: Sequence[int], backends: Sequence[str], runs: int = 10, warmup: int = 2,
          model_dir: Path | None = None, encoder: str | None = None, decoder: str | None = None,
          variants: Sequence[str] = (), precision: str | None = None, compare: bool = False,
          plot: str | Path | None = None, overwrite: bool = False,
          progress: Callable[[str], None] = lambda _msg: None) -> BenchReport:
    """`adainrt bench`: time (or with ``compare``, check the outputs of) every backend asked for, on
    the graphs of ``model_dir`` or of the weights (exported into the cache), each variant asked for;
    optionally draw FPS against size into ``plot``."""
    plan = BenchPlan.make(sizes, backends, runs, warmup, precision, compare, variants)
    if plot is not None and Path(plot).exists() and not overwrite:
        raise OutputExists(plot)  # before minutes of timing
    models = plan.models(model_dir, encoder, decoder, progress=progress)
    if compare:
        return BenchReport(compare_all(plan, models, progress=progress), compare=True)
    results = run_benchmark(models, plan.sizes, plan.targets, runs, warmup, progress=progress)
    if plot is not None:
        plot_fps(results, plot, overwrite=overwrite)
        progress(f"wrote {plot}")
    return BenchReport(results)


def load_test(url: str, levels: Sequence[int], requests: int, size: int = 256, style: str = "bench",
              api_key: str | None = None, model_dir: str | os.PathLike | None = None, time_limit: float = 300.0,
              plot: str | os.PathLike | None = None, overwrite: bool = False,
              say: Callable[[str], None] = lambda _message: None) -> LoadTest:
    """Load-test the server at ``url`` (loopback only) at each concurrency level with ``requests``
    requests of a ``size`` square photo and the stored ``style`` (added from the bundled sample
    style first); optionally time the in-process Stylizer on ``model_dir`` and draw ``plot``."""
    check_loopback(url)
    if requests < 1 or any(level < 1 for level in levels):
        raise AdainrtError("requests and concurrency levels must be at least 1")
    if plot is not None and Path(plot).exists() and not overwrite:
        raise OutputExists(plot)  # before minutes of load
    style_image = bundled_sample("strokes").read_bytes()
    add_style(url, style, style_image, api_key)
    content = sample_request(size)
    results = []
    for level in levels:
        say(f"concurrency {level}: {requests} requests")
        results.append(run_level(url, style, content, level, requests, size, api_key, time_limit))
    in_process = (in_process_throughput(str(model_dir), content, style_image, size, 10)
                  if model_dir is not None else None)
    if plot is not None:
        plot_serve(results, plot, in_process, overwrite=overwrite)
        say(f"wrote {plot}")
    return LoadTest(results, in_process)
