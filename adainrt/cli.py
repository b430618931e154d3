"""The ``adainrt`` command line.

Heavy imports (torch, onnx) happen inside the commands that need them, so ``adainrt info``
and ``adainrt stylize --model DIR`` start fast and work without torch.
"""

from __future__ import annotations

import contextlib
import functools
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from adainrt import __version__
from adainrt.errors import AdainrtError, OutputExists
from adainrt.runtime.backend import backend_names, choose
from adainrt.spec import VARIANTS


def _clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show our errors as one line (``Error: ...``, exit 1) instead of a traceback, with the flag that
    helps where the error has one (``cli_hint``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdainrtError as exc:
            raise click.ClickException(f"{exc}; {exc.cli_hint}" if exc.cli_hint else str(exc)) from exc
        except FileExistsError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # a read-only or full disk, an unreadable folder: the file and the reason
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc

    return wrapper


def _say(message: str) -> None:
    click.echo(message, err=True)


def _progress_bar(stack: contextlib.ExitStack, label: str) -> Callable[[int, int], None]:
    """A (done, total) callback drawing a progress bar on stderr, opened at its first call (when the
    total is known) and closed with ``stack``."""
    bars: list = []

    def done(count: int, total: int) -> None:
        if not bars:
            bars.append(stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr,
                                                              show_pos=True)))
        bars[0].update(count - bars[0].pos)

    return done


def _exported_graphs() -> Callable[..., Path]:
    """The exporter's cache, handed to the runtime as its graph source (the runtime never imports the
    exporter; adainrt.export.cache itself loads torch only when it must export)."""
    from adainrt.export.cache import cached_model_dir

    return cached_model_dir


weights_options = [
    click.option("--encoder", type=click.Path(dir_okay=False, path_type=Path),
                 help="Encoder weights (.safetensors from `adainrt import-weights`). "
                      "Default: the embedded VGG-19."),
    click.option("--decoder", type=click.Path(dir_okay=False, path_type=Path),
                 help="Decoder weights (.safetensors). Default: the decoder bundled with adainrt."),
]
variant_option = click.option(
    "--variant", type=click.Choice(list(VARIANTS)), default=None,
    help="Network variant: full (the paper's VGG-19 and its decoder) or lite (a quarter of the channels, "
         "distilled from full: about 16x fewer operations, for ordinary CPUs; `adainrt info` lists their "
         "cost). Default: the model folder's or the weights' own, full without either.")
weights_options.append(variant_option)

_PRECISION_HELP = ("fp16: graphs with FP16 weights and activations, AdaIN statistics in FP32, FP32 inputs and "
                   "outputs (for GPUs: TensorRT strongly typed builds, CUDA). fp32: the reference.")
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True, help=_PRECISION_HELP)
run_precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
    help=_PRECISION_HELP + " bf16: the FP32 graphs computed in bf16 (openvino on CPUs with native bf16). "
    "Default: the backend's own (tensorrt: fp16; openvino: bf16 where the CPU has it natively; else fp32).")
class BackendChoice(click.Choice):
    """The registered backends (between fixed words such as auto or torch), read from the registry when
    a command parses or shows its help: importing the CLI, or `adainrt --help`, imports no backend,
    and a backend module added later is a choice without any change here."""

    def __init__(self, before: tuple[str, ...] = (), after: tuple[str, ...] = ()):
        self.before, self.after = before, after
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.before, *backend_names(), *self.after)

    @choices.setter
    def choices(self, _value: Any) -> None:
        """click's own __init__ sets the choices; ours are always the registry's."""


backend_option = click.option(
    "--backend", type=BackendChoice(("auto",)), default="auto", show_default=True,
    help="auto: the best backend that can run here (native TensorRT > onnxruntime TensorRT EP > CUDA EP > "
         "CPU; `adainrt info` says which and why). tensorrt: native TensorRT engines of the FP16 graphs, "
         "built once and cached.")


def _heldout_default() -> Path:
    """train/heldout.txt as installed, found without importing adainrt.train (which imports torch)."""
    import importlib.util

    return Path(importlib.util.find_spec("adainrt.train").submodule_search_locations[0]) / "heldout.txt"


def _with(options: list[Callable]) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="adainrt")
def main() -> None:
    """AdaIN arbitrary style transfer (Huang & Belongie, ICCV 2017), deployable.

    \b
    Typical use:
      adainrt stylize photo.jpg --style painting.jpg --output out.png
      adainrt export --output models/          # ONNX graphs for C++ / Triton / TensorRT
      adainrt stylize photos/ --style painting.jpg --output out/ --model models/
      adainrt bench --size 512                 # FPS of every backend here vs the paper
      adainrt info                             # versions, providers, GPU
    """


# ---------------------------------------------------------------------------------- export


@main.command()
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the graphs into (created if needed).")
@click.option("--form", type=click.Choice(["all", "full", "split"]), default="all", show_default=True,
              help="full: one graph (content, style, alpha -> image). split: encoder, style-statistics "
                   "and decoder graphs, so a runtime can cache a style. all: both.")
@_with(weights_options)
@precision_option
@click.option("--triton-repo", type=click.Path(file_okay=False, path_type=Path),
              help="Also lay the graphs out as a Triton model repository here: MODEL/config.pbtxt "
                   "(onnxruntime_onnx, -1 for dynamic dims) and MODEL/1/model.onnx per graph.")
@click.option("--overwrite", is_flag=True, help="Replace graphs already in the folder.")
@_clean_errors
def export(output: Path, form: str, encoder: Path | None, decoder: Path | None, variant: str | None,
           precision: str, triton_repo: Path | None, overwrite: bool) -> None:
    """Export the network to ONNX (opset 18, dynamic H and W, alpha an input) and verify it.

    Each graph is checked by onnx.checker, run in onnxruntime against PyTorch at two sizes
    (the max abs error is printed), and carries its provenance (weights hashes, version,
    pre-processing, tensor names) in its metadata. Inputs are RGB float32 in [0, 1], NCHW;
    any H, W >= 32.
    """
    from adainrt.contract import MANIFEST
    from adainrt.export.cache import load_model
    from adainrt.export.onnx_export import export_model

    forms = ["full", "split"] if form == "all" else [form]
    if triton_repo is not None:  # before the export's minutes (export_model checks its own folder)
        from adainrt.contract import FORMS, graph_file
        from adainrt.export.triton import check_triton_targets

        models = [Path(graph_file(graph, precision)).stem for one in forms for graph in FORMS[one]]
        check_triton_targets(models, triton_repo, overwrite)
    model, prov = load_model(encoder, decoder, variant)
    written = []
    for one in forms:
        for result in export_model(model, output, one, prov, overwrite=overwrite, progress=_say,
                                   precision=precision):
            errors = ", ".join(f"{k}: {v:.2e} (range {result.output_range[k]:.3g})"
                               for k, v in result.max_abs_error.items())
            click.echo(f"{result.path}  max |onnxruntime - torch| {errors}")
            written.append(Path(result.path))
    click.echo(f"{output / MANIFEST}  (the graphs' contract: files, tensors, pre-processing, hashes)")
    if triton_repo is not None:
        from adainrt.export.triton import write_triton_repository

        for model_dir in write_triton_repository(written, triton_repo, overwrite=overwrite):
            click.echo(f"{model_dir}/config.pbtxt  (Triton model {model_dir.name})")


# ---------------------------------------------------------------------------------- stylize


@main.command()
@click.argument("content", type=click.Path(exists=True, path_type=Path))
@click.option("--style", "-s", "styles", required=True, multiple=True,
              help="Style image, or the NAME of a stored style (`adainrt style add`). Repeat to "
                   "interpolate styles (--style-weights) or to give each --mask region its style.")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path),
              help="Output file, or a folder (when CONTENT is a folder, or OUTPUT ends in / or exists "
                   "as a folder): files are named CONTENT_stylized_STYLE.EXT (in the input folder itself, "
                   "earlier *_stylized_* results are not taken as inputs).")
@click.option("--alpha", "-a", type=float, default=1.0, show_default=True,
              help="Content-style trade-off in [0, 1]: 0 reconstructs the content, 1 is full style.")
@click.option("--style-weights", help="Interpolation weights for several --style, e.g. 0.7,0.3 "
                                      "(normalized to sum 1; computed on cached statistics).")
@click.option("--mask", "masks", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Spatial control: one grey-scale mask with two styles (white regions take the first), "
                   "or one mask per style. Each region gets AdaIN with its own content statistics.")
@click.option("--preserve-color", type=click.Choice(["color", "luminance"]), is_flag=False, flag_value="color",
              metavar="[color|luminance]",
              help="Alone or color: recolour the style to the content's colour mean and covariance before "
                   "encoding (keeps the palette, style strokes stay). luminance: stylize the luminance "
                   "only and keep the content's chrominance exactly (strongest colour preservation, "
                   "style colours are lost entirely).")
@click.option("--content-size", type=int, default=512, show_default=True,
              help="Resize the content's smaller side to this (0 keeps the original size).")
@click.option("--style-size", type=int, default=512, show_default=True,
              help="Resize the style's smaller side to this (0 keeps the original size).")
@click.option("--crop", is_flag=True, help="Centre-crop content and style to squares of their size.")
@click.option("--temporal-smoothing", type=float, default=0.0, show_default=True,
              help="Video only: momentum in [0, 1) of a moving average of the content statistics "
                   "across frames; reduces the flicker that local changes (lights, moving objects) "
                   "cause in per-frame AdaIN (try 0.8). 0 is off.")
@click.option("--max-pixels", type=int, default=2048 * 2048, show_default=True,
              help="Content above this many pixels is processed in overlapping tiles with global "
                   "statistics (no seams, bounded memory).")
@backend_option
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of graphs from `adainrt export` (needs no torch). Default: export the "
                   "chosen weights once into the cache folder.")
@_with(weights_options)
@run_precision_option
@click.option("--ext", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="Image format of outputs written into a folder.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist.")
@click.option("--server", metavar="URL",
              help="Send the work to an `adainrt serve` at URL instead of running it here (images and folders; "
                   "each --style a stored style's name on the server, or one image file sent along).")
@click.option("--api-key", envvar="ADAINRT_API_KEY", help="The server's API key (or $ADAINRT_API_KEY).")
@click.option("--skip-existing", is_flag=True,
              help="Leave outputs that already exist alone and do the rest: rerunning a folder job resumes it.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", metavar="[ADDRESS]",
              help="Spread a folder (Ray Data) or a video's frames over Ray workers (pip install "
                   "'adainrt[serve]'): alone, a local Ray on this machine; with ADDRESS (or auto), that cluster, "
                   "whose nodes must all see --model and OUTPUT. Implies --skip-existing: a rerun resumes.")
@click.option("--workers", type=click.IntRange(1, 1024), default=2, show_default=True,
              help="With --ray: workers, each loading the graphs once.")
@click.option("--cpus-per-worker", type=click.FloatRange(0, 256), default=1.0, show_default=True,
              help="With --ray: CPUs Ray reserves per worker.")
@click.option("--gpus-per-worker", type=click.FloatRange(0, 64), default=0.0, show_default=True,
              help="With --ray: GPUs (or a fraction) Ray reserves per worker.")
@_clean_errors
def stylize(content: Path, styles: tuple[str, ...], output: Path, alpha: float, style_weights: str | None,
            masks: tuple[Path, ...], preserve_color: str | None, content_size: int, style_size: int, crop: bool,
            temporal_smoothing: float, max_pixels: int, backend: str, model_dir: Path | None,
            encoder: Path | None, decoder: Path | None, variant: str | None, precision: str | None, ext: str,
            overwrite: bool, server: str | None, api_key: str | None, skip_existing: bool,
            ray_address: str | None, workers: int, cpus_per_worker: float, gpus_per_worker: float) -> None:
    """Stylize CONTENT (an image, a folder of images, or a video) with one or more styles.

    \b
    Examples:
      adainrt stylize photo.jpg --style starry.jpg --output photo_starry.png
      adainrt stylize photos/ --style starry.jpg --output out/ --alpha 0.6
      adainrt stylize photo.jpg -s a.jpg -s b.jpg --style-weights 0.7,0.3 -o mix.png
      adainrt stylize photo.jpg -s a.jpg -s b.jpg --mask sky.png -o split.png
      adainrt stylize photo.jpg -s starry.jpg --preserve-color color -o keep_colours.png
      adainrt stylize clip.mp4 -s starry.jpg -o clip_starry.mp4 --temporal-smoothing 0.8
      adainrt stylize photos/ -s starry.jpg -o out/ --ray --workers 2     # Ray Data, resumable
    """
    from adainrt.runtime import jobs
    from adainrt.runtime.controls import check_counts, parse_weights

    options = jobs.StylizeOptions(
        alpha=alpha, style_weights=parse_weights(style_weights) if style_weights else None,
        preserve_color=preserve_color, content_size=content_size, style_size=style_size, crop=crop,
        temporal_smoothing=temporal_smoothing, max_pixels=max_pixels, ext=ext, overwrite=overwrite)
    check_counts(len(styles), len(options.style_weights) if options.style_weights else None, len(masks))
    video = jobs.is_video_input(content)
    plan = None if video else jobs.plan_outputs(content, output, styles, ext, overwrite,
                                                skip_existing=skip_existing or ray_address is not None)
    if plan is not None and plan.earlier_results:
        _say(f"left out {len(plan.earlier_results)} earlier result(s) (*_stylized_*) of the input folder")
    if plan is not None and plan.done:
        _say(f"{len(plan.done)} output(s) already written, left alone; {len(plan.pairs)} to do")
    if ray_address is not None:
        if server is not None:
            raise AdainrtError("--ray runs the work on Ray workers and --server on a server: choose one")
        _stylize_on_ray(content, plan, output, styles, options, masks, model_dir, encoder, decoder, variant,
                        backend, precision, None if ray_address == "local" else ray_address, workers,
                        cpus_per_worker, gpus_per_worker)
        return
    if server is not None:
        if plan is None or masks:
            raise AdainrtError("--server sends images and folders (no video, no masks)")
        report = jobs.stylize_on_server(server, plan, styles, options, api_key)
        click.echo(f"wrote {len(report.written)} image(s) via {server}")
        return
    if plan is not None:
        jobs.check_image_job(options)
    mask_images = [jobs.load_mask(m) for m in masks]
    with jobs.open_stylizer(model_dir, encoder, decoder, backend, precision, max_pixels, progress=_say,
                            graphs=_exported_graphs(), variant=variant) as stylizer:
        style_inputs = jobs.resolve_styles(styles, stylizer.model_info, options)
        if plan is None:
            _stylize_video(stylizer, content, output, style_inputs, options, mask_images)
            return
        with click.progressbar(length=len(plan.pairs), label=f"stylizing ({stylizer.backend})", file=sys.stderr,
                               show_pos=True) as bar:
            report = jobs.stylize_images(stylizer, plan, style_inputs, options, mask_images,
                                         progress=lambda _src: bar.update(1))
    _image_job_summary(report, plan, output)


def _image_job_summary(report, plan, output: Path) -> None:
    for failure in report.skipped:
        _say(f"skipped: {failure}")
    done = len(report.written)
    click.echo(f"wrote {done} image{'s' if done != 1 else ''} to {output}" if plan.folder else f"wrote {output}")
    if report.skipped:
        raise click.ClickException(f"{len(report.skipped)} of {len(plan.pairs)} inputs could not be stylized")


def _stylize_on_ray(content: Path, plan, output: Path, styles: tuple[str, ...], options, masks: tuple[Path, ...],
                    model_dir: Path | None, encoder: Path | None, decoder: Path | None, variant: str | None,
                    backend: str, precision: str | None, address: str | None, workers: int, cpus: float,
                    gpus: float) -> None:
    """A folder (``plan``) over Ray Data, or a video (no plan) in chunks of frames over Ray actors."""
    from adainrt.contract import read_manifest
    from adainrt.runtime import jobs, ray_jobs

    folder, precision = jobs.model_dir_for(model_dir, encoder, decoder, backend, precision, progress=_say,
                                           graphs=_exported_graphs(), variant=variant)
    style_inputs = jobs.resolve_styles(styles, read_manifest(folder), options)
    place = {"address": address, "workers": workers, "cpus_per_worker": cpus, "gpus_per_worker": gpus}
    _say(f"starting {workers} Ray worker(s){f' on {address}' if address else ' on a local Ray'}")
    if plan is None:
        if masks:
            raise AdainrtError("masks apply to images, not video")
        from adainrt.runtime.video import probe

        with click.progressbar(length=probe(content).frames, label="stylizing video (ray)", file=sys.stderr,
                               show_pos=True) as bar:
            report = ray_jobs.stylize_video_on_ray(content, output, folder, backend, precision, style_inputs,
                                                   options, **place, progress=lambda _d, _t: bar.update(1))
        _video_summary(report.video)
        return
    jobs.check_image_job(options)
    mask_images = [jobs.load_mask(m) for m in masks]
    with click.progressbar(length=len(plan.pairs), label="stylizing (ray)", file=sys.stderr, show_pos=True) as bar:
        report = ray_jobs.stylize_on_ray(plan, folder, backend, precision, style_inputs, options, mask_images,
                                         **place, progress=lambda _src: bar.update(1))
    _image_job_summary(report, plan, output)


def _stylize_video(stylizer, content: Path, output: Path, styles: list, options, masks: list) -> None:
    from adainrt.runtime import jobs
    from adainrt.runtime.video import probe

    with click.progressbar(length=probe(content).frames, label=f"stylizing video ({stylizer.backend})",
                           file=sys.stderr, show_pos=True) as bar:
        report = jobs.stylize_video_file(stylizer, content, output, styles, options, masks,
                                         progress=lambda _done, _total: bar.update(1))
    _video_summary(report.video)


def _video_summary(result) -> None:
    audio = "with audio" if result.audio else "no audio in source"
    click.echo(f"wrote {result.path}: {result.frames} frames at {result.fps:g} fps, "
               f"{result.size[0]}x{result.size[1]}, {audio}; flicker {result.flicker:.2f}")


# ---------------------------------------------------------------------------------- style bank


@main.group()
def style() -> None:
    """Store styles by name as their statistics (512 means + 512 stds) and reuse them.

    \b
      adainrt style add starry starry_night.jpg
      adainrt stylize photo.jpg --style starry --output out.png   # skips the style encoder
      adainrt style list
      adainrt style remove starry
    The bank lives in $ADAINRT_STYLES (default: the cache folder's styles/).
    """


@style.command("add")
@click.argument("name")
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--style-size", type=int, default=512, show_default=True,
              help="Resize the style's smaller side to this first (0 keeps it).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Graphs from `adainrt export` (the statistics belong to their encoder).")
@_with(weights_options)
@click.option("--overwrite", is_flag=True, help="Replace a stored style of that name.")
@_clean_errors
def style_add(name: str, image: Path, style_size: int, model_dir: Path | None, encoder: Path | None,
              decoder: Path | None, variant: str | None, overwrite: bool) -> None:
    """Encode IMAGE once and store its statistics as NAME (for one network variant: a lite style is
    refused by the full model and the other way round)."""
    from adainrt.runtime import jobs

    path = jobs.add_style(name, image, jobs.StylizeOptions(style_size=style_size, overwrite=overwrite),
                          model_dir, encoder, decoder, progress=_say, graphs=_exported_graphs(), variant=variant)
    click.echo(f"stored style {name!r} in {path.parent}")


@style.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def style_list(as_json: bool) -> None:
    """List stored styles."""
    from adainrt.runtime.style_bank import StyleBank

    bank = StyleBank()
    entries = bank.entries()
    if as_json:
        click.echo(json.dumps(entries, indent=2))
        return
    if not entries:
        click.echo(f"no styles stored in {bank.folder}")
    for entry in entries:
        if "broken" in entry:
            click.echo(f"{entry['name']:<20} BROKEN: {entry['broken']}")
            continue
        click.echo(f"{entry['name']:<20} {entry.get('source', '?')} ({entry.get('variant', 'full')}, size "
                   f"{entry.get('style_size')}, encoder {entry.get('encoder_hash')}, {entry.get('created', '')})")


@style.command("remove")
@click.argument("name")
@_clean_errors
def style_remove(name: str) -> None:
    """Delete a stored style."""
    from adainrt.runtime.style_bank import StyleBank

    StyleBank().remove(name)
    click.echo(f"removed style {name!r}")


# ---------------------------------------------------------------------------------- cache


@main.group()
def cache() -> None:
    """What the cache folder holds ($ADAINRT_CACHE, default ~/.cache/adainrt), and freeing it.

    \b
      adainrt cache list              # size of each part
      adainrt cache clear openvino    # one part; alone: every derived part
    Everything but stored styles is derived and made again on first use; nothing prunes it by
    itself (a new decoder or library version adds entries beside the old ones).
    """


@cache.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def cache_list(as_json: bool) -> None:
    """Each part of the cache folder: where, how many files, how big."""
    from adainrt.cache import cache_parts, human_bytes

    parts = cache_parts()
    if as_json:
        click.echo(json.dumps([p.as_dict() for p in parts], indent=2))
        return
    for part in parts:
        click.echo(f"{part.name:<9} {human_bytes(part.bytes):>9} {part.files:>6} files  {part.path}")
        click.echo(f"{'':<9} {part.about}")


@cache.command("clear")
@click.argument("parts", nargs=-1, metavar="[PART]...")
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
@_clean_errors
def cache_clear(parts: tuple[str, ...], dry_run: bool) -> None:
    """Remove derived parts of the cache, as `adainrt cache list` names them (onnx, and each
    backend's compiled models or engines); every derived part when none is named. Stored styles
    are never removed here. Do not clear while another adainrt runs."""
    from adainrt.cache import clear, human_bytes

    removed = clear(parts, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for part in removed:
        click.echo(f"{verb} {part.name}: {human_bytes(part.bytes)} in {part.files} files ({part.path})")
    if not removed:
        click.echo("nothing to remove")


# ---------------------------------------------------------------------------------- bench


@main.command()
@click.option("--size", "sizes", type=int, multiple=True, default=[512], show_default=True,
              help="Square size to time; repeat for several (the paper reports 256 and 512).")
@click.option("--backend", "backends", multiple=True,
              type=BackendChoice(("all",), ("torch",)), default=["all"],
              show_default=True, help="Backends to time; all = every one usable here plus torch eager.")
@click.option("--runs", type=int, default=10, show_default=True, help="Timed runs per measurement.")
@click.option("--warmup", type=int, default=2, show_default=True, help="Untimed runs first.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with all four graphs (`adainrt export --form all`). Default: cache.")
@_with(weights_options[:2])
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)),
              help="Network variant to time; repeat (--variant full --variant lite) to time both in one "
                   "interleaved run, each row with its GMAC. Default: the model folder's or the weights' own.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="Time every backend in this precision where it runs it (tensorrt: fp16 only; openvino: "
                   "fp32 or bf16; torch eager: fp32). Default: each backend's own, and openvino in f32 "
                   "beside bf16 on CPUs with native bf16.")
@click.option("--compare", is_flag=True,
              help="Instead of timing, check each backend's output (FP32 and FP16 graphs) against FP32 "
                   "onnxruntime CPU: PSNR and max abs error, as Polygraphy does.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON (for machines).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw FPS against size per backend (full path) with the paper's figures, as a PNG.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
@_clean_errors
def bench(sizes: tuple[int, ...], backends: tuple[str, ...], runs: int, warmup: int,
          model_dir: Path | None, encoder: Path | None, decoder: Path | None, variants: tuple[str, ...],
          precision: str | None, compare: bool, as_json: bool, plot: Path | None, overwrite: bool) -> None:
    """Latency (p50/p95) and FPS per backend, beside the paper's 56 FPS (256) and 15 FPS (512).

    Times the full path (content and style encoded each frame, as the paper measured) and
    the cached-style path (style statistics computed once), after warm-up runs. Backends are
    timed interleaved (round after round, each once in turn), and each row shows the PSNR of
    its output against FP32 onnxruntime CPU on the same inputs.
    """
    from adainrt.benchmarks import bench as lib

    plan = lib.BenchPlan.make(sizes, backends, runs, warmup, precision, compare, variants)
    if plot is not None and plot.exists() and not overwrite:
        raise OutputExists(plot)  # before minutes of timing
    enc, dec = (str(p) if p else None for p in (encoder, decoder))
    models = plan.models(model_dir, enc, dec, progress=_say)
    if compare:
        rows = lib.compare_all(plan, models, enc, dec, progress=_say)
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2) if as_json else lib.format_fidelity(rows))
        return
    results = lib.run_benchmark(models, plan.sizes, plan.targets, runs, warmup, enc, dec, progress=_say)
    click.echo(json.dumps([r.as_dict() for r in results], indent=2) if as_json else lib.format_table(results))
    if plot is not None:
        from adainrt.benchmarks.plot import plot_fps

        plot_fps(results, plot, overwrite=overwrite)
        _say(f"wrote {plot}")


# ---------------------------------------------------------------------------------- train


#: `train` options of a narrower variant's distillation alone.
_DISTILL_ONLY = ("pool_pairs", "distill_iters", "teacher_decoder")


@main.command()
@click.option("--content", "content_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of content photos (searched recursively).")
@click.option("--style", "style_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of style images (searched recursively).")
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoint.pt, log.jsonl, samples/, decoder.safetensors.")
@click.option("--resume", is_flag=True, help="Continue the run in --output exactly where it stopped.")
@click.option("--encoder", type=click.Path(exists=True, dir_okay=False), help="Encoder (default: embedded).")
@click.option("--init-decoder", type=click.Path(exists=True, dir_okay=False),
              help="Start from these decoder weights instead of random ones.")
@click.option("--resize", type=int, default=512, show_default=True, help="Smaller side before cropping.")
@click.option("--crop", type=int, default=256, show_default=True, help="Random square crop size.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Content-style pairs per step.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--lr-decay", type=float, default=5e-5, show_default=True, help="lr / (1 + decay * step).")
@click.option("--content-weight", type=float, default=1.0, show_default=True)
@click.option("--style-weight", type=float, default=10.0, show_default=True)
@click.option("--invert-iters", type=int, default=0, show_default=True,
              help="First train the decoder to invert relu4_1 of photos (pixel loss) for this many "
                   "steps: learns structure fast on a small compute budget.")
@click.option("--pool-crops-per-image", type=int, default=0, show_default=True,
              help="CPU speed-up: draw crops from a fixed pool of this many crops per image, encoded "
                   "once before training, instead of encoding fresh crops every step (BF16 on 2 cores: "
                   "0.83 -> 0.59 s per step, see `python -m adainrt.benchmarks.train_step`; 0: fresh "
                   "crops, the paper's way).")
@click.option("--amp", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Mixed precision of the passes (statistics and losses stay FP32). auto: fp16 on CUDA, "
                   "bf16 on CPUs with AMX/AVX512-BF16 (about 2x faster than fp32), else fp32.")
@click.option("--ema-decay", type=float, default=0.999, show_default=True,
              help="Evaluate and export an exponential moving average of the weights with this decay "
                   "(0.999: about the last 1000 steps). It smooths the step-to-step noise of the "
                   "weights: averaging 1,500 steps of checkpoints took the held-out style ratio from "
                   "0.241 to 0.210 (MODEL_CARD.md). 0: the weights as trained.")
@click.option("--recolor-styles", type=click.FloatRange(0.0, 1.0), is_flag=False, flag_value=1.0, default=0.0,
              show_default=True, metavar="[FRACTION]",
              help="Mirror style crops and turn their hues by a random angle: more palettes from few "
                   "styles (with 90 styles, a decoder matches unseen styles far worse than its own: "
                   "MODEL_CARD.md). Alone: every crop; with a FRACTION, that share of the crops (the "
                   "others keep their painter's colours); 0 turns it off in a resumed run.")
@click.option("--max-iter", type=int, default=160_000, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, show_default=True, help="Stop after this long (0: no limit).")
@click.option("--checkpoint-every", type=int, default=500, show_default=True)
@click.option("--eval-every", type=int, default=500, show_default=True,
              help="Held-out losses and a sample grid every N steps (0: never).")
@click.option("--holdout-every", type=int, default=25, show_default=True,
              help="Hold out every k-th image (sorted) of each folder for evaluation (0: none).")
@click.option("--holdout-list", type=click.Path(exists=True, dir_okay=False),
              help="Hold out the files this list names instead ('content/NAME' and 'style/NAME' lines; "
                   "adainrt's own: train/heldout.txt, v0.4's held-out images and new ones).")
@click.option("--style-sampling", type=click.Choice(["uniform", "source"]), default="uniform", show_default=True,
              help="source: draw styles weighted by their source (the file name's prefix before '__'), "
                   "each source's share growing as the square root of its size, so one large data set "
                   "(150 texture photos) does not dominate what the decoder learns.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="full", show_default=True,
              help="full: train a decoder for the encoder (the paper). lite (or another narrower variant): "
                   "distill its encoder and decoder from the full model (adainrt.train.distill: a pool stylized "
                   "by the teacher once, then the paper's loss); the options above that it takes keep its own "
                   "defaults unless given. Writes OUTPUT/encoder.safetensors and OUTPUT/decoder.safetensors.")
@click.option("--pool-pairs", type=click.IntRange(1), default=4000, show_default=True,
              help="Distillation: photo/style crop pairs the teacher stylizes once (saved as OUTPUT/pool.pt).")
@click.option("--distill-iters", type=click.IntRange(0), default=3000, show_default=True,
              help="Distillation: steps that imitate the teacher alone before the paper's loss comes in.")
@click.option("--teacher-decoder", type=click.Path(exists=True, dir_okay=False),
              help="Distillation: the full decoder to imitate (default: the bundled one).")
@_clean_errors
def train(output_dir: str, resume: bool, **options: Any) -> None:
    """Train a decoder for the encoder (the paper's recipe), resumable.

    Loss: content loss against the AdaIN target plus style-weight times the mean/std loss at
    relu1_1..relu4_1. Every --holdout-every'th image of each folder is held out for evaluation.
    Ctrl-C (or SIGTERM) writes a checkpoint; --resume continues with the same step, optimizer and random
    state, and the run's own settings except those given again (say, larger crops for a second
    stage; the folders, --seed and --holdout-every stay). The result is
    OUTPUT/decoder.safetensors, usable as --decoder everywhere.

    \b
    Several GPUs (DistributedDataParallel; --batch-size is per GPU):
      torchrun --nproc_per_node 4 -m adainrt.cli train --content photos/ --style paintings/ -o run/
    """
    from click.core import ParameterSource

    from adainrt.train import Trainer
    from adainrt.train.distill import Distiller, distill_config
    from adainrt.train.trainer import CHECKPOINT, run_config

    ctx = click.get_current_context()
    given = [k for k in options if ctx.get_parameter_source(k) != ParameterSource.DEFAULT]
    distilling = options["variant"] != "full"
    if not distilling:
        lite_only = [k for k in given if k in _DISTILL_ONLY]
        if lite_only:
            raise AdainrtError(f"--{lite_only[0].replace('_', '-')} is an option of a narrower variant's "
                               "distillation: give --variant lite with it")
        options = {k: v for k, v in options.items() if k not in ("variant", *_DISTILL_ONLY)}
    config, changes = (distill_config if distilling else run_config)(output_dir, resume, options, given)
    for name, (before, now) in changes.items():
        _say(f"resuming with --{name.replace('_', '-')} {now} (was {before})")
    trainer = Distiller(config) if distilling else Trainer(config)
    if resume:
        trainer.resume()
        _say(f"resumed at step {trainer.step}")
        if trainer.step >= config.max_iter:
            _say(f"the run is at its --max-iter {config.max_iter} already; give a larger --max-iter to train on")
    signal.signal(signal.SIGTERM, _interrupt)  # a scheduler's preemption, kill: checkpointed as Ctrl-C is
    try:
        path = trainer.run()
        trainer.close()
    except KeyboardInterrupt:
        if not (Path(output_dir) / CHECKPOINT).exists():
            raise click.ClickException("interrupted before the first step; nothing written") from None
        raise click.ClickException(
            f"interrupted at step {trainer.step}; checkpoint written, --resume continues"
        ) from None
    written = " and ".join(map(str, path)) if isinstance(path, tuple) else str(path)
    click.echo(f"wrote {written} (step {trainer.step})")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Decoder file to write (safetensors, usable as --decoder everywhere).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output.")
@_clean_errors
def snapshot(run_dir: str, output: Path, overwrite: bool) -> None:
    """The decoder of a training run's last checkpoint, while the run goes on.

    Writes what the run would export if it stopped now (its weights average when it keeps
    one), for `adainrt evaluate` or `stylize` mid-run; the run is not disturbed.

    \b
      adainrt snapshot runs/d -o runs/d/now.safetensors
      adainrt evaluate --content held/photos --style held/paintings --decoder runs/d/now.safetensors
    """
    from adainrt.train.trainer import snapshot_decoder

    step = snapshot_decoder(run_dir, output, overwrite=overwrite)
    click.echo(f"wrote {output} (step {step})")


@main.command()
@click.option("--content", "content_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of content photos.")
@click.option("--style", "style_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of style images; content i is paired with style i mod the number of styles "
                   "(or with every style: --all-pairs).")
@click.option("--all-pairs", is_flag=True, help="Score every content with every style.")
@click.option("--per-style", type=click.IntRange(min=1), default=None,
              help="Score each style with N contents, taken in turn (every content used about equally).")
@click.option("--heldout", "heldout_list", is_flag=False, flag_value=str(_heldout_default()), default=None,
              type=click.Path(exists=True, dir_okay=False), metavar="[LIST]",
              help="Score only the files a held-out list names (alone: adainrt's own, train/heldout.txt, "
                   "the images its decoders never trained on; give the data folders they are in).")
@click.option("--alpha", "alphas", type=click.FloatRange(0.0, 1.0), multiple=True,
              help="Content-style trade-off to score at; repeat for several (the first one is reported per "
                   "style and drawn on the sheet; default 1).")
@_with(weights_options[:2])
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)),
              help="Network variant to score (its bundled weights unless --encoder/--decoder); repeat "
                   "(--variant full --variant lite) to score both on the same pairs, side by side. Every "
                   "variant is measured by the full VGG-19.")
@click.option("--backend", type=BackendChoice(("torch", "auto")), default="torch", show_default=True,
              help="What makes the outputs: torch (the PyTorch decoder, the reference) or a runtime "
                   "backend running the exported graphs (see `adainrt stylize --help`). The losses are "
                   "always measured with the PyTorch encoder in FP32, so backends compare on one scale.")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Runtime backends: folder of graphs from `adainrt export` (default: export the chosen "
                   "weights once into the cache folder). Its encoder must be the --encoder in use.")
@run_precision_option
@click.option("--size", type=int, default=256, show_default=True, help="Centre crops of this size.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a contact sheet PNG: styles along the top, photos down the left, outputs "
                   "where they meet (128-pixel cells).")
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --sheet.")
@_clean_errors
def evaluate(content_dir: str, style_dir: str, all_pairs: bool, per_style: int | None, heldout_list: str | None,
             alphas: tuple[float, ...], encoder: Path | None, decoder: Path | None, variants: tuple[str, ...],
             backend: str, model_dir: Path | None, precision: str, size: int, sheet: Path | None,
             as_json: bool, overwrite: bool) -> None:
    """The paper's content and style losses of a decoder's outputs, beside the baseline, and
    how much of the photo's structure survives.

    The baseline is the style loss of the unstylized content image: a working decoder's
    style loss is far below it (adainrt's quality bar: a fifth of it). Structure is the
    distance between the output's and the photo's VGG features at relu3_1 and relu4_1, each
    channel normalized (so the style statistics AdaIN puts there on purpose do not count):
    0 is the photo's layout exactly, about 2 an unrelated image. A decoder that painted pure
    texture would win on style alone; structure shows it. Also per style, to show which
    styles a decoder fails on, and at several --alpha to show the trade-off. Needs torch for
    the loss network; the outputs can come from any backend.

    \b
      adainrt evaluate --content photos/ --style paintings/ --all-pairs --sheet sheet.png
      adainrt evaluate --content ../shared/data/content --style ../shared/data/style --heldout \\
          --per-style 6 --alpha 1 --alpha 0.8 --alpha 0.6
      adainrt evaluate --content photos/ --style paintings/ --backend ort-cpu --precision fp16
      adainrt evaluate --content ../shared/data/content --style ../shared/data/style --heldout \
          --per-style 6 --variant full --variant lite --sheet sheet.png   # sheet_full.png, sheet_lite.png
    """
    from adainrt.train.evaluate import compare_variants, evaluate_folders

    if len(variants) > 1 and (encoder or decoder or model_dir):
        raise AdainrtError("weights and model folders are one variant each: leave them out to compare variants "
                           "(their bundled weights), or give one --variant")
    sheets = {v: sheet.with_name(f"{sheet.stem}_{v}{sheet.suffix}") if sheet and len(variants) > 1 else sheet
              for v in variants or (None,)}
    results = []
    for variant, variant_sheet in sheets.items():
        with contextlib.ExitStack() as stack:
            pair_done = _progress_bar(stack, f"scoring pairs{f' ({variant})' if variant else ''}")
            results.append(evaluate_folders(
                content_dir, style_dir, all_pairs, encoder, decoder, backend, model_dir, precision, size,
                variant_sheet, overwrite, progress=_say, pair_done=pair_done, alphas=alphas or (1.0,),
                per_style=per_style or 0, heldout_list=heldout_list, variant=variant))
    if as_json:
        as_dicts = [r.as_dict() for r in results]
        click.echo(json.dumps(as_dicts[0] if len(as_dicts) == 1 else {"variants": as_dicts}, indent=2))
        return
    click.echo("\n\n".join(r.report() for r in results))
    if len(results) > 1:
        click.echo(compare_variants(results))


# ---------------------------------------------------------------------------------- demo


@main.command()
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("adainrt-demo"),
              show_default=True, help="Folder for the stylized sample.")
@click.option("--bench/--no-bench", "with_bench", default=True, show_default=True,
              help="Also benchmark 256x256 and 512x512 afterwards.")
@backend_option
@click.option("--overwrite", is_flag=True, help="Replace an earlier demo output.")
@click.pass_context
def demo(ctx: click.Context, output: Path, with_bench: bool, backend: str, overwrite: bool) -> None:
    """Stylize the bundled sample photo with the bundled sample style, then benchmark.

    Uses only what ships in the package: the embedded VGG-19, the bundled decoder, a public
    domain photo (NASA's astronaut portrait) and a procedurally drawn brush-stroke style.
    Nothing is downloaded.
    """
    from adainrt.images import bundled_sample

    ctx.invoke(stylize, content=bundled_sample("astronaut"), styles=(str(bundled_sample("strokes")),),
               output=output / "astronaut_stylized_strokes.png", backend=backend, overwrite=overwrite)
    if with_bench:
        ctx.invoke(bench, sizes=(256, 512), runs=5, warmup=1)


# ---------------------------------------------------------------------------------- serve


class _FiniteFloat(click.ParamType):
    """A finite number above (or from) a bound: click's FloatRange lets nan and inf through."""

    name = "number"

    def __init__(self, low: float, low_open: bool):
        self.low, self.low_open = low, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number) or number < self.low or (self.low_open and number == self.low):
            self.fail(f"{value!r} is not a finite number {'above' if self.low_open else 'of at least'} {self.low:g}",
                      param, ctx)
        return number


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of graphs from `adainrt export`. Default: the bundled weights, exported once.")
@variant_option
@backend_option
@click.option("--replicas", type=click.IntRange(1), default=1, show_default=True,
              help="Replicas (each loads the graphs once).")
@click.option("--min-replicas", type=click.IntRange(1), help="Autoscale from this many replicas ...")
@click.option("--max-replicas", type=click.IntRange(1), help="... to this many, by load.")
@click.option("--cpus-per-replica", type=_FiniteFloat(0, low_open=True), default=1.0, show_default=True)
@click.option("--gpus-per-replica", type=_FiniteFloat(0, low_open=False), default=0.0, show_default=True)
@click.option("--address", help="Join this Ray cluster (e.g. ray://head:10001 or auto). Default: a local Ray.")
@click.option("--api-key", envvar="ADAINRT_API_KEY",
              help="Require 'Authorization: Bearer KEY' (or set $ADAINRT_API_KEY); an empty one is refused. "
                   "Default: no key.")
@click.option("--max-pixels", type=int, default=2048 * 2048, show_default=True,
              help="Refuse (413) content or style images above this many pixels after resizing: what one "
                   "request may make a replica hold.")
@click.option("--max-body-mb", type=_FiniteFloat(0, low_open=True), default=50.0, show_default=True,
              help="Larger request bodies get 413, cut off while they arrive.")
@click.option("--body-timeout", type=_FiniteFloat(0, low_open=True), default=60.0, show_default=True,
              help="Seconds a request body may take to arrive; a slower or stalled client gets 408.")
@click.option("--bank-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The style bank the replicas share (default $ADAINRT_STYLES or the cache's styles/). On a "
                   "cluster, this and --model must be on storage every node sees.")
@click.option("--max-batch", type=click.IntRange(1, 64),
              help="Most stylize requests a replica runs together (one encoder and one decoder run per content "
                   "size, each request with its own style and alpha). 1 turns batching off. Default: 8 on a GPU "
                   "backend or with --gpus-per-replica; 1 on a CPU, where one image already fills the cores "
                   "(measured: no gain).")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=10.0, show_default=True,
              help="How long the first request of a batch waits for others to join it.")
@_clean_errors
def serve(host: str, port: int, model_dir: Path | None, variant: str | None, backend: str, replicas: int,
          min_replicas: int | None, max_replicas: int | None, cpus_per_replica: float, gpus_per_replica: float,
          address: str | None, api_key: str | None, max_pixels: int, max_body_mb: float, body_timeout: float,
          bank_dir: Path | None, max_batch: int | None, batch_wait_ms: float) -> None:
    """Serve stylization over HTTP on Ray Serve (pip install 'adainrt[serve]').

    \b
      adainrt serve --port 8000 --replicas 2
      curl -X POST --data-binary @painting.jpg localhost:8000/v1/styles/starry
      curl -X POST --data-binary @photo.jpg 'localhost:8000/v1/stylize?style=starry&alpha=0.8' -o out.png
    \b
    The web page is at /, the API's description at /docs and /openapi.json.
    Routes: GET /healthz, GET /v1/styles, POST /v1/styles/NAME (image body),
    POST /v1/stylize?style=NAME[,NAME2]&alpha=A&size=S[&style_weights=..&preserve_color=color]
    (image body, or multipart 'content' and 'style' parts). Errors are JSON {"error": ...}:
    400 bad input, 401 key, 404 unknown style, 406 Accept, 408 slow body, 413 too big. Ctrl-C stops it.
    Requests arriving together are batched (--max-batch), whatever their styles; the
    X-Adainrt-Batch response header says how many shared the run.
    """
    from adainrt.runtime import jobs
    from adainrt.runtime.ray_jobs import check_room, init_ray
    from adainrt.server import ServeSettings, check_folders, check_listening, check_ray_address, check_settings
    from adainrt.server import deployment as serve_app

    try:
        import ray
        from ray import serve as ray_serve
    except ImportError as exc:
        raise AdainrtError("serving needs Ray Serve: pip install 'adainrt[serve]'") from exc
    check_listening(host, port)
    check_ray_address(address)
    check_folders(bank_dir)
    folder, _precision = jobs.model_dir_for(model_dir, backend=backend, progress=_say, graphs=_exported_graphs(),
                                            variant=variant)
    if max_batch is None:  # replicas given GPUs may run where this driver has none (a CPU head node)
        max_batch = 8 if gpus_per_replica > 0 or choose(backend).backend.device == "cuda" else 1
    settings = ServeSettings(str(folder.resolve()), backend, max_pixels, int(max_body_mb * (1 << 20)), api_key,
                             str(bank_dir.resolve()) if bank_dir else None, max_batch, batch_wait_ms / 1000.0,
                             body_timeout)
    check_settings(settings)
    init_ray(ray, address)
    try:  # a local Ray would wait forever for replicas it cannot place
        check_room(ray, address, min_replicas or replicas, cpus_per_replica, gpus_per_replica)
    except AdainrtError as exc:
        raise exc.hinted("lower --replicas or --cpus-per-replica / --gpus-per-replica") from None
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`, systemd, kill: the same clean stop as Ctrl-C
    try:
        ray_serve.start(http_options={"host": host, "port": port})
        ray_serve.run(serve_app(settings, replicas, min_replicas, max_replicas, cpus_per_replica, gpus_per_replica),
                      name="adainrt", route_prefix="/")
        click.echo(f"adainrt serve: ready on http://{host}:{port} (model {folder}, backend {backend}, "
                   f"{'autoscaling' if min_replicas or max_replicas else f'{replicas} replica(s)'}, batches of up "
                   f"to {max_batch}); Ctrl-C stops", err=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        _say("stopping")
    finally:
        ray_serve.shutdown()
        ray.shutdown()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@main.command("bench-serve")
@click.argument("url")
@click.option("--concurrency", "levels", type=int, multiple=True, default=[1, 4, 16], show_default=True,
              help="Requests in flight at once; repeat for several levels.")
@click.option("--requests", type=int, default=50, show_default=True, help="Requests per level.")
@click.option("--size", type=int, default=256, show_default=True, help="Square content size sent.")
@click.option("--style", default="bench", show_default=True,
              help="Stored style to use; added from the bundled sample style when the server lacks it.")
@click.option("--api-key", envvar="ADAINRT_API_KEY", help="The server's key (or $ADAINRT_API_KEY).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also time the in-process Stylizer on these graphs (the cost of serving).")
@click.option("--time-limit", type=float, default=300.0, show_default=True, help="Seconds per level at most.")
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw throughput and latency against concurrency into this PNG.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --plot file.")
@_clean_errors
def bench_serve(url: str, levels: tuple[int, ...], requests: int, size: int, style: str, api_key: str | None,
                model_dir: Path | None, time_limit: float, as_json: bool, plot: Path | None, overwrite: bool) -> None:
    """Load-test an `adainrt serve` on this machine: throughput and p50/p95/p99 latency per concurrency.

    \b
      adainrt serve --port 8000 --replicas 2 &
      adainrt bench-serve http://127.0.0.1:8000 --concurrency 1 --concurrency 4 --concurrency 16 --requests 100
    Loopback addresses only; each level is bounded in requests and time.
    """
    from adainrt.benchmarks import serve_load
    from adainrt.client import add_style
    from adainrt.images import bundled_sample

    serve_load.check_loopback(url)
    if requests < 1 or any(level < 1 for level in levels):
        raise AdainrtError("requests and concurrency levels must be at least 1")
    if plot is not None and plot.exists() and not overwrite:
        raise OutputExists(plot)  # before minutes of load
    style_image = bundled_sample("strokes").read_bytes()
    add_style(url, style, style_image, api_key)
    content = serve_load.sample_request(size)
    results = []
    for level in levels:
        _say(f"concurrency {level}: {requests} requests")
        results.append(serve_load.run_level(url, style, content, level, requests, size, api_key, time_limit))
    in_process = (serve_load.in_process_throughput(str(model_dir), content, style_image, size, 10)
                  if model_dir is not None else None)
    if as_json:
        click.echo(json.dumps({"levels": [r.as_dict() for r in results], "in_process_images_per_s": in_process},
                              indent=2))
    else:
        click.echo(serve_load.format_results(results, in_process))
    if plot is not None:
        from adainrt.benchmarks.plot import plot_serve

        plot_serve(results, plot, in_process, overwrite=overwrite)
        _say(f"wrote {plot}")


# ---------------------------------------------------------------------------------- info


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@_clean_errors
def info(as_json: bool) -> None:
    """Versions, execution providers, the backend auto picks and why, GPU, weights.

    Run this first on a new machine: it says whether onnxruntime sees the TensorRT or CUDA
    execution providers (install adainrt[gpu] for them), whether TensorRT itself is
    importable, which GPU the driver reports, and where exported graphs are cached.
    """
    from adainrt.info import collect, format_report

    report = collect()
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


# ---------------------------------------------------------------------------------- weights


@main.command("import-weights")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write our .safetensors file.")
@click.option("--encoder", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="For a decoder: the encoder it was trained with (pytorch-AdaIN's vgg_normalised.pth "
                   "or our .safetensors); its hash is recorded so mismatched pairs are refused.")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT if it exists.")
@_clean_errors
def import_weights(source: Path, output: Path, encoder: Path | None, overwrite: bool) -> None:
    """Convert published weights into adainrt's safetensors format.

    \b
    Accepted:
      pytorch-AdaIN vgg_normalised.pth   (encoder; layers past relu4_1 are dropped)
      pytorch-AdaIN decoder.pth          (decoder; needs --encoder vgg_normalised.pth)
      torchvision vgg19 state dict       (encoder; features.* keys)
    Loaded with torch.load(weights_only=True): no code in the file is run.
    """
    from adainrt.weights import import_weights as convert

    meta = convert(source, output, encoder, overwrite=overwrite)
    click.echo(f"wrote {meta['kind']} {output} (hash {meta['weights_hash']})")


# ---------------------------------------------------------------------------------- engines


@main.command("build-engine")
@click.argument("onnx_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Engine file (default: the ONNX name with .engine). A sidecar ENGINE.json is written beside it.")
@click.option("--min", "min_size", default="32", show_default=True, help="Smallest image size, N or HxW.")
@click.option("--opt", "opt_size", default="512", show_default=True, help="Size the kernels are tuned for.")
@click.option("--max", "max_size", default="2048", show_default=True, help="Largest image size, N or HxW.")
@click.option("--max-batch", type=int, default=1, show_default=True, help="Largest content batch.")
@click.option("--minShapes", "min_shapes", default="", help="trtexec syntax, overrides --min: content:1x3x256x256,...")
@click.option("--optShapes", "opt_shapes", default="", help="trtexec syntax, overrides --opt.")
@click.option("--maxShapes", "max_shapes", default="", help="trtexec syntax, overrides --max.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path),
              help="Timing cache reused across builds (default: in the cache folder).")
@click.option("--dry-run", is_flag=True, help="Print the optimization profile and stop (no GPU needed).")
@click.option("--overwrite", is_flag=True, help="Replace an existing engine.")
@_clean_errors
def build_engine(onnx_path: Path, output: Path | None, min_size: str, opt_size: str, max_size: str, max_batch: int,
                 min_shapes: str, opt_shapes: str, max_shapes: str, timing_cache: Path | None, dry_run: bool,
                 overwrite: bool) -> None:
    """Build a TensorRT engine from an exported graph (needs TensorRT and an NVIDIA GPU).

    Use the FP16 graphs (`adainrt export --precision fp16`): TensorRT 10.12+ and 11 build them
    as strongly typed networks, FP16 convolutions with the AdaIN statistics in FP32. One
    optimization profile covers H and W from --min to --max (default 32..2048, tuned for
    512: every size the Stylizer sends, larger content being tiled); the engine only accepts
    shapes inside it. Engines are valid only for the TensorRT
    version and GPU that built them: the sidecar JSON records both and loading checks them.
    """
    from adainrt.runtime.backends.tensorrt.engine import build_engine as build
    from adainrt.runtime.backends.tensorrt.engine import default_timing_cache, profiles_for

    profiles = profiles_for(onnx_path, min_size, opt_size, max_size, max_batch,
                            {"min": min_shapes, "opt": opt_shapes, "max": max_shapes})
    if dry_run:
        click.echo(json.dumps([p.__dict__ for p in profiles], indent=1))
        return
    engine = output or onnx_path.with_suffix(".engine")
    sidecar = build(onnx_path, engine, profiles, timing_cache or default_timing_cache(), overwrite=overwrite)
    click.echo(f"wrote {engine} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu_name}) "
               f"and {engine}.json")


if __name__ == "__main__":
    main()
