"""The ``adainrt`` command line: the group, the commands a user meets first, and the command
families of :mod:`adainrt.commands` (training, serving, speed) added to it.

Every command parses its options, calls one library function and prints what it returns; the
options they share are declared once, in :mod:`adainrt.commands.common`. Heavy imports (torch,
onnx) happen inside the commands that need them, so ``adainrt info`` and ``adainrt stylize
--model DIR`` start fast and work without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from adainrt import __version__
from adainrt.commands import serving, speed, training
from adainrt.commands.common import (
    api_key_option,
    backend_option,
    clean_errors,
    exported_graphs,
    job_events,
    json_option,
    model_option,
    overwrite_option,
    precision_option,
    run_precision_option,
    say,
    weights_options,
    with_options,
)


class OneLineErrors(click.Group):
    """Usage errors in one line, the option, what was wrong and where help is (click's own are three:
    the usage, a hint, the error), so a script's log or a service manager shows the whole reason."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            if exc.ctx is None:
                raise
            where = exc.ctx.command_path
            raise click.UsageError(f"{exc.format_message().strip().rstrip('.')} (see `{where} --help`)") from None


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@with_options(weights_options)
@precision_option
@click.option("--triton-repo", type=click.Path(file_okay=False, path_type=Path),
              help="Also lay the graphs out as a Triton model repository here: MODEL/config.pbtxt "
                   "(onnxruntime_onnx, -1 for dynamic dims) and MODEL/1/model.onnx per graph.")
@overwrite_option("graphs already in the folder")
@clean_errors
def export(output: Path, form: str, encoder: Path | None, decoder: Path | None, variant: str | None,
           precision: str, triton_repo: Path | None, overwrite: bool) -> None:
    """Export the network to ONNX (opset 18, dynamic H and W, alpha an input) and verify it.

    Each graph is checked by onnx.checker, run in onnxruntime against PyTorch at two sizes
    (the max abs error is printed), and carries its provenance (weights hashes, version,
    pre-processing, tensor names) in its metadata. Inputs are RGB float32 in [0, 1], NCHW;
    any H, W >= 32.
    """
    from adainrt.export.run import export_all

    for line in export_all(output, form, encoder, decoder, variant, precision, triton_repo, overwrite, progress=say):
        click.echo(line)


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
@model_option("Folder of graphs from `adainrt export` (needs no torch). Default: export the "
              "chosen weights once into the cache folder.")
@with_options(weights_options)
@run_precision_option
@click.option("--ext", type=click.Choice(["png", "jpg"]), default="png", show_default=True,
              help="Image format of outputs written into a folder.")
@overwrite_option("outputs that already exist")
@click.option("--server", metavar="URL",
              help="Send the work to an `adainrt serve` at URL instead of running it here (images and folders; "
                   "each --style a stored style's name on the server, or one image file sent along).")
@api_key_option("The server's API key")
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
@clean_errors
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
    from adainrt.runtime.controls import parse_weights
    from adainrt.runtime.jobs import StylizeOptions
    from adainrt.runtime.stylize_job import ModelChoice, StylizeJob, Target, run_stylize_job

    options = StylizeOptions(
        alpha=alpha, style_weights=parse_weights(style_weights) if style_weights else None,
        preserve_color=preserve_color, content_size=content_size, style_size=style_size, crop=crop,
        temporal_smoothing=temporal_smoothing, max_pixels=max_pixels, ext=ext, overwrite=overwrite)
    result = run_stylize_job(
        StylizeJob(content, output, styles, options, masks, skip_existing),
        ModelChoice(model_dir, encoder, decoder, variant, backend, precision),
        Target(ray_address, workers, cpus_per_worker, gpus_per_worker, server, api_key),
        graphs=exported_graphs(), events=job_events())
    for failure in result.report.skipped:
        say(f"skipped: {failure}")
    click.echo(result.summary(output))
    if result.report.skipped:
        raise click.ClickException(f"{len(result.report.skipped)} of {len(result.plan.pairs)} inputs could not "
                                   "be stylized")


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
@model_option("Graphs from `adainrt export` (the statistics belong to their encoder).")
@with_options(weights_options)
@backend_option
@overwrite_option("a stored style of that name")
@clean_errors
def style_add(name: str, image: Path, style_size: int, model_dir: Path | None, encoder: Path | None,
              decoder: Path | None, variant: str | None, backend: str, overwrite: bool) -> None:
    """Encode IMAGE once and store its statistics as NAME (for one network variant: a lite style is
    refused by the full model and the other way round)."""
    from adainrt.runtime import jobs

    path = jobs.add_style(name, image, jobs.StylizeOptions(style_size=style_size, overwrite=overwrite),
                          model_dir, encoder, decoder, progress=say, graphs=exported_graphs(), variant=variant,
                          backend=backend)
    click.echo(f"stored style {name!r} in {path.parent}")


@style.command("list")
@json_option
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
@clean_errors
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
@json_option
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
@clean_errors
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


# ---------------------------------------------------------------------------------- demo


@main.command()
@click.option("--output", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("adainrt-demo"),
              show_default=True, help="Folder for the stylized sample.")
@click.option("--bench/--no-bench", "with_bench", default=True, show_default=True,
              help="Also benchmark 256x256 and 512x512 afterwards.")
@backend_option
@overwrite_option("an earlier demo output")
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
        ctx.invoke(speed.bench, sizes=(256, 512), runs=5, warmup=1)


# ---------------------------------------------------------------------------------- info


@main.command()
@json_option
@clean_errors
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
@overwrite_option("OUTPUT if it exists")
@clean_errors
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


for command in (training.train, training.snapshot, training.evaluate, serving.serve, serving.bench_serve,
                speed.bench, speed.build_engine):
    main.add_command(command)


if __name__ == "__main__":
    main()
