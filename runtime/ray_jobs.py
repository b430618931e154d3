"""`adainrt stylize FOLDER_OR_VIDEO --ray [ADDRESS]`: the work spread over a Ray cluster.

A folder goes through Ray Data: the driver plans the outputs (as a local run does: collisions
refused, finished outputs skipped so a rerun resumes), reads the styles once and ships them to
the workers; each worker loads the graphs once (``map_batches`` over a callable class) and runs
the same job as a local run (:func:`~adainrt.runtime.jobs.stylize_images`: same pipeline,
atomic writes). The model folder and the output folder must be on storage every node sees (one
machine: any folder).

A video's frames are decoded by the driver and sent in chunks to the same workers (as Ray
actors), a bounded number in flight, and written back in order: memory stays flat. Temporal
smoothing carries state from frame to frame, so it is refused here.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adainrt.errors import AdainrtError
from adainrt.runtime.controls import ControlError, StyleStats
from adainrt.runtime.jobs import JobReport, OutputPlan, StylizeOptions, stylize_images, video_style
from adainrt.runtime.stylizer import StyleInput, Stylizer
from adainrt.runtime.video import stylize_frame

#: Images per call of a worker: small, so progress moves and a failure loses little.
IMAGES_PER_BATCH = 2
#: Video frames per task, and tasks in flight per worker.
FRAMES_PER_TASK, TASKS_PER_WORKER = 8, 2


class StylizeWorker:
    """One Ray Data worker: the graphs loaded once, then batches of (source, output) pairs."""

    def __init__(self, model_dir: str, backend: str, precision: str | None, inputs: Any, options: StylizeOptions):
        """``inputs``: (styles, masks), or their object reference (put once in Ray's object store, so
        the constructor arguments stay small; a top-level one arrives resolved already)."""
        import ray

        self.stylizer = Stylizer(model_dir, backend, max_pixels=options.max_pixels, precision=precision)
        self.styles, self.masks = ray.get(inputs) if isinstance(inputs, ray.ObjectRef) else inputs
        self.options = options
        self.video_style: StyleStats | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        errors = []
        for src, dst in zip(batch["src"], batch["dst"], strict=True):
            if not self.options.overwrite and Path(dst).is_file():
                # The plan left out outputs that existed, so this one was written by this job: a batch Ray
                # retries after its worker died had written part of its outputs (whole: writes are atomic).
                errors.append("")
                continue
            plan = OutputPlan([(Path(src), Path(dst))], folder=True)
            report = stylize_images(self.stylizer, plan, self.styles, self.options, self.masks)
            errors.append(report.skipped[0] if report.skipped else "")
        return {"src": batch["src"], "dst": batch["dst"], "error": np.array(errors, dtype=object)}

    def stylize_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 video frames, stylized as a local video run does them (its one style
        encoded once per worker)."""
        if self.video_style is None:
            self.video_style = video_style(self.stylizer, self.styles, self.options)
        return np.stack([stylize_frame(self.stylizer, frame, self.video_style, self.options.alpha, None)
                         for frame in frames])


def start_ray(address: str | None, model_dir: str | os.PathLike, precision: str | None) -> Any:
    """Join the cluster at ``address`` ("auto": the one this machine belongs to), or start a local Ray.

    The model folder is checked here first: a worker failing to load it would end the job in
    pages of Ray's tracebacks instead of one line.
    """
    from adainrt.contract import FORMS, graph_precision, verified_graphs

    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise AdainrtError("--ray needs Ray Data: pip install 'adainrt[serve]'") from exc
    verified_graphs(model_dir, FORMS["split"], graph_precision(precision or "fp32"))
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its per-dataset INFO lines, the progress bar notice
    return init_ray(ray, address)


def init_ray(ray: Any, address: str | None) -> Any:
    """Start a local Ray (``address`` None) or join a cluster, once per process; a clear error when
    neither works. Shared by `adainrt serve` and the ``--ray`` jobs."""
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise AdainrtError(f"cannot start or join Ray{f' at {address}' if address else ''}: {exc}") from exc
    return ray


def check_room(ray: Any, address: str | None, workers: int, cpus: float, gpus: float) -> None:
    """On a local Ray, refuse workers this machine cannot hold (Ray would wait for them forever);
    a cluster's autoscaler may add nodes, so there the request stands."""
    if address is not None:
        return
    have = ray.cluster_resources()
    for name, each in (("CPU", cpus), ("GPU", gpus)):
        if workers * each > have.get(name, 0.0) + 1e-9:
            raise AdainrtError(f"{workers} workers of {each:g} {name} each need {workers * each:g}, and this "
                               f"machine's Ray has {have.get(name, 0.0):g}; use fewer workers or fewer {name}s each"
                               ).hinted(f"lower --workers or --{name.lower()}s-per-worker")


def stylize_on_ray(plan: OutputPlan, model_dir: str | os.PathLike, backend: str, precision: str | None,
                   styles: list[StyleInput], options: StylizeOptions, masks: Sequence[Any] = (),
                   address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                   gpus_per_worker: float = 0.0,
                   progress: Callable[[Path], None] = lambda _src: None) -> JobReport:
    """Stylize ``plan``'s images on ``workers`` Ray workers; one result per image, as they finish."""
    if workers < 1:
        raise AdainrtError(f"--workers must be at least 1, got {workers}")
    report = JobReport()
    if not plan.pairs:
        return report
    ray = start_ray(address, model_dir, precision)
    check_room(ray, address, workers, cpus_per_worker, gpus_per_worker)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts images, not Ray's blocks
    items = [{"src": str(src), "dst": str(dst)} for src, dst in plan.pairs]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, len(items) // IMAGES_PER_BATCH))
    results = dataset.map_batches(
        StylizeWorker, batch_size=IMAGES_PER_BATCH, compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, batch_format="numpy",
        fn_constructor_kwargs={"model_dir": str(Path(model_dir).resolve()), "backend": backend,
                               "precision": precision, "inputs": ray.put((styles, list(masks))),
                               "options": options})
    try:
        for row in results.iter_rows():
            if row["error"]:
                report.skipped.append(str(row["error"]))
            else:
                report.written.append(Path(row["dst"]))
            progress(Path(row["src"]))
    except ray.exceptions.RayError as exc:  # a worker that cannot start (model folder unseen on a node, ...)
        raise worker_failure(exc) from exc
    return report


def worker_failure(exc: Exception) -> AdainrtError:
    """A Ray failure as one line: the worker's own last line (its exception) where there is one."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return AdainrtError(f"a Ray worker failed: {lines[-1] if lines else type(exc).__name__}; outputs written so "
                        "far are kept, and a rerun resumes")


def stylize_video_on_ray(content: Path, output: Path, model_dir: str | os.PathLike, backend: str,
                         precision: str | None, styles: list[StyleInput], options: StylizeOptions,
                         address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                         gpus_per_worker: float = 0.0, progress: Callable[[int, int], None] = lambda _d, _t: None
                         ) -> JobReport:
    """A video's frames stylized on ``workers`` Ray actors and written in order (atomically)."""
    from adainrt.runtime.jobs import check_video_job
    from adainrt.runtime.video import even_size, probe, sized_frames, write_video

    check_video_job(output, options)
    if options.temporal_smoothing:
        raise ControlError("temporal smoothing carries statistics from frame to frame, so it runs on one "
                           "machine: leave out --ray, or the smoothing")
    info = probe(content)
    size = even_size(info.width, info.height, options.content_size)
    ray = start_ray(address, model_dir, precision)
    check_room(ray, address, workers, cpus_per_worker, gpus_per_worker)
    worker = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(StylizeWorker)
    inputs = ray.put((styles, []))
    actors = [worker.remote(str(Path(model_dir).resolve()), backend, precision, inputs, options)
              for _ in range(workers)]

    def styled() -> Iterator[np.ndarray]:
        in_flight: deque = deque()
        frames = sized_frames(content, size)
        chunks = iter(lambda: list(itertools.islice(frames, FRAMES_PER_TASK)), [])
        for index, chunk in enumerate(chunks):
            in_flight.append(actors[index % workers].stylize_frames.remote(np.stack(chunk)))
            if len(in_flight) >= TASKS_PER_WORKER * workers:
                yield from ray.get(in_flight.popleft())
        while in_flight:
            yield from ray.get(in_flight.popleft())

    try:
        result = write_video(content, output, info, size, styled(), options.overwrite, progress)
    except ray.exceptions.RayError as exc:
        raise worker_failure(exc) from exc
    finally:
        for actor in actors:
            ray.kill(actor)
    return JobReport(written=[result.path], video=result)
