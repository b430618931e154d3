"""One entry point for a stylize job: images, a folder or a video, run here, on Ray, or by a server.

`adainrt stylize` (and a script) describes the job once, as a :class:`StylizeJob`, says where it
runs with a :class:`Target`, and calls :func:`run_stylize_job`; the choice among the four ways
(local images, local video, Ray, a server) is made here, not by the caller. What the caller sees
while it runs comes back through :class:`JobEvents`: messages and progress bars, so the CLI draws
them and a script stays silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from adainrt.errors import AdainrtError
from adainrt.runtime import jobs
from adainrt.runtime.controls import check_counts
from adainrt.runtime.jobs import GraphSource, JobReport, OutputPlan, StylizeOptions


@dataclass(frozen=True)
class ModelChoice:
    """Which graphs run a job, and on what: a model folder (or the weights to export into the cache),
    the network variant, the backend and its precision (None: the backend's own)."""

    model_dir: Path | None = None
    encoder: Path | None = None
    decoder: Path | None = None
    variant: str | None = None
    backend: str = "auto"
    precision: str | None = None


@dataclass(frozen=True)
class Target:
    """Where a job runs: here (the default), on Ray workers (``ray``: "local" for a Ray on this
    machine, or a cluster's address), or on an `adainrt serve` at ``server``."""

    ray: str | None = None
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    server: str | None = None
    api_key: str | None = None

    def __post_init__(self) -> None:
        if self.ray is not None and self.server is not None:
            raise AdainrtError("--ray runs the work on Ray workers and --server on a server: choose one")

    @property
    def ray_address(self) -> str | None:
        return None if self.ray == "local" else self.ray


def _no_bar(_label: str, _total: int) -> AbstractContextManager[Callable[[], None]]:
    return contextlib.nullcontext(lambda: None)


@dataclass(frozen=True)
class JobEvents:
    """What a running job tells its caller: ``say`` a line, and ``bar(label, total)``, a context
    whose value is called once per finished item (an image or a frame)."""

    say: Callable[[str], None] = lambda _message: None
    bar: Callable[[str, int], AbstractContextManager[Callable[[], None]]] = _no_bar


@dataclass(frozen=True)
class StylizeJob:
    """A stylize job: ``content`` (an image, a folder of images or a video) with ``styles`` (image
    files or stored styles' names) into ``output``."""

    content: Path
    output: Path
    styles: tuple[str, ...]
    options: StylizeOptions = field(default_factory=StylizeOptions)
    masks: tuple[Path, ...] = ()
    skip_existing: bool = False


@dataclass
class JobResult:
    """What a job did: its report (written, skipped, the video's summary) and, for images, its plan."""

    report: JobReport
    plan: OutputPlan | None
    via: str | None = None  # the server that did the work

    def summary(self, output: Path) -> str:
        """What a finished job wrote, in one line."""
        done = len(self.report.written)
        if self.via:
            return f"wrote {done} image(s) via {self.via}"
        if self.plan is None:
            video = self.report.video
            audio = "with audio" if video.audio else "no audio in source"
            return (f"wrote {video.path}: {video.frames} frames at {video.fps:g} fps, "
                    f"{video.size[0]}x{video.size[1]}, {audio}; flicker {video.flicker:.2f}")
        return f"wrote {done} image{'s' if done != 1 else ''} to {output}" if self.plan.folder else f"wrote {output}"


def run_stylize_job(job: StylizeJob, model: ModelChoice = ModelChoice(), target: Target = Target(),
                    graphs: GraphSource | None = None, events: JobEvents = JobEvents()) -> JobResult:
    """Run ``job`` where ``target`` says; ``graphs`` exports the weights when no model folder is given."""
    options = job.options
    check_counts(len(job.styles), len(options.style_weights) if options.style_weights else None, len(job.masks))
    plan = _plan(job, target, events)
    if target.ray is not None:
        return JobResult(_on_ray(job, plan, model, target, graphs, events), plan)
    if target.server is not None:
        if plan is None or job.masks:
            raise AdainrtError("--server sends images and folders (no video, no masks)")
        report = jobs.stylize_on_server(target.server, plan, job.styles, options, target.api_key)
        return JobResult(report, plan, via=target.server)
    return JobResult(_here(job, plan, model, graphs, events), plan)


def _plan(job: StylizeJob, target: Target, events: JobEvents) -> OutputPlan | None:
    """The outputs of an image job, planned before any work (None for a video)."""
    if jobs.is_video_input(job.content):
        return None
    plan = jobs.plan_outputs(job.content, job.output, job.styles, job.options.ext, job.options.overwrite,
                             skip_existing=job.skip_existing or target.ray is not None)
    if plan.earlier_results:
        events.say(f"left out {len(plan.earlier_results)} earlier result(s) (*_stylized_*) of the input folder")
    if plan.done:
        events.say(f"{len(plan.done)} output(s) already written, left alone; {len(plan.pairs)} to do")
    return plan


def _here(job: StylizeJob, plan: OutputPlan | None, model: ModelChoice, graphs: GraphSource | None,
          events: JobEvents) -> JobReport:
    if plan is not None:
        jobs.check_image_job(job.options)
    masks = [jobs.load_mask(m) for m in job.masks]
    with jobs.open_stylizer(model.model_dir, model.encoder, model.decoder, model.backend, model.precision,
                            job.options.max_pixels, progress=events.say, graphs=graphs,
                            variant=model.variant) as stylizer:
        styles = jobs.resolve_styles(job.styles, stylizer.model_info, job.options)
        if plan is None:
            with events.bar(f"stylizing video ({stylizer.backend})", _frames(job.content)) as done:
                return jobs.stylize_video_file(stylizer, job.content, job.output, styles, job.options, masks,
                                               progress=lambda _d, _t: done())
        with events.bar(f"stylizing ({stylizer.backend})", len(plan.pairs)) as done:
            return jobs.stylize_images(stylizer, plan, styles, job.options, masks, progress=lambda _src: done())


def _on_ray(job: StylizeJob, plan: OutputPlan | None, model: ModelChoice, target: Target,
            graphs: GraphSource | None, events: JobEvents) -> JobReport:
    """A folder (``plan``) over Ray Data, or a video (no plan) in chunks of frames over Ray actors."""
    from adainrt.contract import read_manifest
    from adainrt.runtime import ray_jobs

    folder, precision = jobs.model_dir_for(model.model_dir, model.encoder, model.decoder, model.backend,
                                           model.precision, progress=events.say, graphs=graphs,
                                           variant=model.variant)
    styles = jobs.resolve_styles(job.styles, read_manifest(folder), job.options)
    place = {"address": target.ray_address, "workers": target.workers, "cpus_per_worker": target.cpus_per_worker,
             "gpus_per_worker": target.gpus_per_worker}
    where = f" on {target.ray_address}" if target.ray_address else " on a local Ray"
    events.say(f"starting {target.workers} Ray worker(s){where}")
    if plan is None:
        if job.masks:
            raise AdainrtError("masks apply to images, not video")
        with events.bar("stylizing video (ray)", _frames(job.content)) as done:
            return ray_jobs.stylize_video_on_ray(job.content, job.output, folder, model.backend, precision, styles,
                                                 job.options, **place, progress=lambda _d, _t: done())
    jobs.check_image_job(job.options)
    masks = [jobs.load_mask(m) for m in job.masks]
    with events.bar("stylizing (ray)", len(plan.pairs)) as done:
        return ray_jobs.stylize_on_ray(plan, folder, model.backend, precision, styles, job.options, masks,
                                       **place, progress=lambda _src: done())


def _frames(video: Path) -> int:
    from adainrt.runtime.video import probe

    return probe(video).frames
