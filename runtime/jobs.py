"""The jobs the CLI (and a server, or a script) runs: stylize a file, a folder or a video.

Options are checked once, when a :class:`StylizeOptions` is made; styles are resolved from
image files or the style bank; outputs are planned (and refused on collision or when they
exist) before any work; then every image goes through :meth:`Stylizer.stylize`, the one
pipeline of the controls. No torch here, and no CLI flag names in the errors.

Graphs come from a model folder, or, without one, from a :class:`GraphSource` the caller hands
in (the exporter's cache, :func:`adainrt.export.cache.cached_model_dir`): the runtime never
imports the exporter, so it runs where torch is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from adainrt.contract import graph_precision
from adainrt.errors import AdainrtError, ImageError
from adainrt.fileio import check_folder_path, check_replaceable, refuse_existing
from adainrt.images import (
    BLACK,
    IMAGE_SUFFIXES,
    center_crop,
    check_resize,
    list_images,
    load_image,
    resize_smaller_side,
    save_image,
)
from adainrt.runtime.backend import Choice, choose, reference_backend
from adainrt.runtime.controls import ControlError, StyleStats, check_weights, interpolate
from adainrt.runtime.stylizer import (
    DEFAULT_MAX_PIXELS,
    PRESERVE_COLOR_MODES,
    InvalidArgument,
    StyleInput,
    Stylizer,
    check_alpha,
)
from adainrt.spec import check_variant

OUTPUT_FORMATS = ("png", "jpg")
#: In the name of every result written into a folder: NAME_stylized_STYLE.EXT.
RESULT_MARK = "_stylized_"


class GraphSource(Protocol):
    """Makes (or finds) a folder with the graphs of a weight pair when no model folder is given;
    :func:`adainrt.export.cache.cached_model_dir` is one (it exports once into the cache)."""

    def __call__(self, encoder: str | os.PathLike | None, decoder: str | os.PathLike | None, *,
                 forms: tuple[str, ...], progress: Callable[[str], None], precisions: tuple[str, ...],
                 variant: str | None) -> Path: ...


def ensure_model_dir(
    model_dir: str | os.PathLike | None,
    encoder: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
    forms: tuple[str, ...] = ("split",),
    precisions: tuple[str, ...] = ("fp32",),
    progress: Callable[[str], None] = lambda _msg: None,
    graphs: GraphSource | None = None,
    variant: str | None = None,
) -> Path:
    """The folder given, or the weights' graphs from ``graphs`` (the caller's exporter).

    A given folder is used as it is (the Stylizer checks it against its manifest); without one,
    ``graphs`` makes them (the exporter's cache: exported once, needs torch; local, nothing
    downloaded). The runtime is handed the exporter rather than importing it. ``variant``: the
    network asked for (None: the folder's or the weights' own; full by default).
    """
    if model_dir is not None:
        check_weights_match(Path(model_dir), encoder, decoder)
        check_variant_match(Path(model_dir), variant)
        return Path(model_dir)
    if graphs is None:
        raise InvalidArgument("no model folder given and no way to export one here: give a folder of graphs "
                              "from `adainrt export` (or pass graphs=adainrt.export.cache.cached_model_dir)")
    return graphs(encoder, decoder, forms=forms, progress=progress, precisions=precisions, variant=variant)


def check_variant_match(model_dir: Path, variant: str | None) -> None:
    """A model folder asked for as one variant must hold that variant's graphs."""
    from adainrt.contract import manifest_variant, read_manifest

    if variant is None:
        return
    check_variant(variant)
    held = manifest_variant(read_manifest(model_dir)).name
    if held != variant:
        raise InvalidArgument(f"{model_dir} holds the graphs of the {held} network, not {variant}: export the "
                              f"{variant} one into another folder (`adainrt export --variant {variant} --output DIR`)"
                              f", or leave the variant out to use the folder's")


def check_weights_match(model_dir: Path, encoder: str | os.PathLike | None,
                        decoder: str | os.PathLike | None) -> None:
    """Weights given beside a model folder must be the ones its graphs were exported from (its
    manifest records their hashes): the graphs hold their weights, so others would be ignored."""
    from adainrt.bundled import weights_metadata
    from adainrt.contract import read_manifest

    given = {kind: path for kind, path in (("encoder", encoder), ("decoder", decoder)) if path is not None}
    if not given:
        return
    manifest = read_manifest(model_dir)
    for kind, path in given.items():
        recorded = manifest.get(f"{kind}_hash")
        found = weights_metadata(path).get("weights_hash")
        if found != recorded:
            raise InvalidArgument(f"{path} is not the {kind} the graphs in {model_dir} were exported from (weights "
                                  f"{found}, the graphs' {recorded}): the graphs hold their weights, so give "
                                  f"either the model folder or these weights, not both")


def open_stylizer(
    model_dir: str | os.PathLike | None,
    encoder: str | os.PathLike | None = None,
    decoder: str | os.PathLike | None = None,
    backend: str = "auto",
    precision: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[str], None] = lambda _msg: None,
    graphs: GraphSource | None = None,
    variant: str | None = None,
) -> Stylizer:
    """A Stylizer on the graphs of ``model_dir`` (or of the weights, made by ``graphs``) in the
    precision the backend runs (its own default unless one is asked for)."""
    choice = choose(backend, precision)  # once, for the graphs' precision and the Stylizer
    folder, precision = model_dir_for(model_dir, encoder, decoder, choice, precision, progress, graphs, variant)
    return Stylizer(folder, choice, max_pixels=max_pixels, precision=precision)


def model_dir_for(model_dir: str | os.PathLike | None, encoder: str | os.PathLike | None = None,
                  decoder: str | os.PathLike | None = None, backend: str | Choice = "auto",
                  precision: str | None = None,
                  progress: Callable[[str], None] = lambda _msg: None,
                  graphs: GraphSource | None = None, variant: str | None = None) -> tuple[Path, str]:
    """(folder, precision): the split graphs in the precision the backend runs (its own unless asked),
    made by ``graphs`` when no folder is given."""
    precision, _why = choose(backend, precision).backend.precision(precision)
    folder = ensure_model_dir(model_dir, encoder, decoder, ("split",), (graph_precision(precision),), progress, graphs,
                              variant)
    return folder, precision


def load_mask(path: str | os.PathLike) -> Image.Image:
    """A mask file as grey levels; its transparent pixels are outside the region (black)."""
    return load_image(path, background=BLACK).convert("L")


@dataclass(frozen=True)
class StylizeOptions:
    """Everything that shapes a stylization job, checked once here."""

    alpha: float = 1.0
    style_weights: tuple[float, ...] | None = None
    preserve_color: str | None = None
    content_size: int = 512
    style_size: int = 512
    crop: bool = False
    temporal_smoothing: float = 0.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    ext: str = "png"
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.style_weights is not None:
            object.__setattr__(self, "style_weights", tuple(check_weights(self.style_weights)))
        if self.preserve_color not in PRESERVE_COLOR_MODES:
            raise ControlError(f"colour preservation must be one of color, luminance, got {self.preserve_color!r}")
        check_resize(self.content_size, "content size")
        check_resize(self.style_size, "style size")
        if not 0.0 <= self.temporal_smoothing < 1.0:
            raise InvalidArgument(f"temporal smoothing must be in [0, 1), got {self.temporal_smoothing}")
        if self.max_pixels < 1:
            raise InvalidArgument(f"the pixel limit must be a positive number, got {self.max_pixels}")
        if self.ext not in OUTPUT_FORMATS:
            raise InvalidArgument(f"output format {self.ext!r}: choose one of {', '.join(OUTPUT_FORMATS)}")

    @property
    def weights(self) -> list[float] | None:
        """The style weights as the Stylizer takes them."""
        return list(self.style_weights) if self.style_weights else None


def prepare_image(path: str | os.PathLike, size: int, crop: bool) -> Image.Image:
    """An image file resized (smaller side ``size``, 0 keeps) and optionally centre-cropped square."""
    image = resize_smaller_side(load_image(path), size, what=str(path))
    return center_crop(image, size or min(image.size)) if crop else image


def resolve_styles(names: Sequence[str], model: Mapping[str, Any] | None, options: StylizeOptions,
                   bank: object | None = None) -> list[StyleInput]:
    """Each name is an image file, or the name of a stored style (its statistics, no encoding;
    refused when made for another network variant or encoder than ``model``'s: a graph's metadata
    or a manifest, with ``encoder_hash`` and ``variant``)."""
    from adainrt.runtime.style_bank import StyleBank

    bank = bank or StyleBank()
    model = model or {}
    styles: list[StyleInput] = []
    for name in names:
        if Path(name).is_file():
            refuse_ambiguous_style(name, lambda: bank.names(), f"a stored style in {bank.folder}")
            styles.append(prepare_image(name, options.style_size, options.crop))
        elif Path(name).suffix.lower() in IMAGE_SUFFIXES or _looks_like_path(name):
            raise ImageError(f"style {name}: no such image file")
        else:
            styles.append(bank.get(name, model.get("encoder_hash"), model.get("variant")).stats)
    if not styles:
        raise ControlError("no style given")
    return styles


def _looks_like_path(name: str) -> bool:
    return "/" in name or os.sep in name


def refuse_ambiguous_style(name: str, stored: Callable[[], Sequence[str]], what: str) -> None:
    """A style given by a bare name that is both a file here and a stored style is refused, not
    silently one of them (``stored`` is only asked when the name could be both)."""
    if not _looks_like_path(name) and Path(name).is_file() and name in stored():
        raise ControlError(f"style {name!r} is both a file here and {what}; write ./{name} for "
                           "the file (the stored style is used where no such file is)")


@dataclass(frozen=True)
class OutputPlan:
    """Which output each input goes to; ``folder``: the output is a folder of results."""

    pairs: list[tuple[Path, Path]]
    folder: bool
    #: Outputs already there, left alone (``skip_existing``: a rerun resumes where one stopped).
    done: tuple[Path, ...] = ()
    #: Inputs left out because they are results of an earlier run (output folder = input folder).
    earlier_results: tuple[Path, ...] = ()


def plan_outputs(content: Path, output: Path, style_names: Sequence[str], ext: str = "png",
                 overwrite: bool = False, skip_existing: bool = False) -> OutputPlan:
    """Map inputs to outputs before any work: refuse collisions and (unless allowed) existing files.

    ``skip_existing``: outputs already written are left out of the plan (outputs are written
    atomically, so one that exists is whole): rerunning an interrupted folder job resumes it.

    A folder (or an output that is a folder, or ends in a separator) gives
    ``OUTPUT/NAME_stylized_STYLE.EXT`` per image; a file gives the output as named. When OUTPUT is
    the input folder itself, images named like results (``*_stylized_*``) are left out of the
    inputs, so a rerun does not stylize the last run's results.
    """
    folder = content.is_dir() or output.is_dir() or str(output).endswith(("/", os.sep))
    check_folder_path(output if folder else output.parent)
    if folder and output.is_file():
        raise AdainrtError(f"{output} is a file, but the output must be a folder here (the input is {content})")
    contents = list_images(content, unreadable=True) if content.is_dir() else [content]
    earlier: tuple[Path, ...] = ()
    if content.is_dir() and _same_folder(content, output):  # our results would become inputs on a rerun
        earlier = tuple(c for c in contents if RESULT_MARK in c.stem)
        contents = [c for c in contents if RESULT_MARK not in c.stem]
    if not contents:
        found = f" other than {len(earlier)} earlier results (*{RESULT_MARK}*)" if earlier else ""
        raise ImageError(f"{content}: no images found{found} (looked for {', '.join(IMAGE_SUFFIXES)})")
    if not folder:
        pairs = [(content, output)]
    else:
        tag = "_".join(Path(s).stem for s in style_names)
        pairs = [(c, output / f"{c.stem}{RESULT_MARK}{tag}.{ext}") for c in contents]
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise AdainrtError(f"{seen[dst]} and {src} would both be written to {dst}; rename one of them")
        seen[dst] = src
        check_replaceable(dst)  # a FIFO or a device named like an output: refused before any work
    existing = [dst for _, dst in pairs if dst.exists()]
    if existing and skip_existing and not overwrite:
        return OutputPlan([(src, dst) for src, dst in pairs if not dst.exists()], folder, tuple(existing), earlier)
    if existing and not overwrite:
        refuse_existing(existing, also=", or --skip-existing to do only the rest" if folder else "")
    return OutputPlan(pairs, folder, earlier_results=earlier)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return b.is_dir() and a.samefile(b)
    except OSError:
        return False


@dataclass
class JobReport:
    """What a job wrote and what it skipped (with why)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    video: object | None = None


def stylize_images(stylizer: Stylizer, plan: OutputPlan, styles: list[StyleInput], options: StylizeOptions,
                   masks: Sequence[Image.Image] = (), progress: Callable[[Path], None] = lambda _p: None
                   ) -> JobReport:
    """Stylize every planned image; in a folder, an unreadable image is skipped and reported.

    Reading the next image and writing the last result (decoding, resizing, PNG encoding) run on
    a helper thread while the backend computes.
    """
    report = JobReport()

    def load(src: Path) -> Image.Image:
        return prepare_image(src, options.content_size, options.crop)

    def failed(exc: AdainrtError) -> None:
        if not plan.folder:
            raise exc
        report.skipped.append(str(exc))

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="adainrt-io") as io:
        saving: Future | None = None
        loads = [io.submit(load, src) for src, _dst in plan.pairs[:1]]
        for index, (src, dst) in enumerate(plan.pairs):
            if index + 1 < len(plan.pairs):
                loads.append(io.submit(load, plan.pairs[index + 1][0]))  # read ahead
            try:
                result = stylizer.stylize(
                    loads[index].result(), styles, options.alpha,
                    style_weights=options.weights,
                    mask=list(masks) or None, preserve_color=options.preserve_color)
                loads[index] = None  # the image is done with
                if saving is not None:
                    _collect(saving, report, failed)
                saving = io.submit(save_image, result, dst, overwrite=options.overwrite)
            except AdainrtError as exc:
                failed(exc)
            progress(src)
        if saving is not None:
            _collect(saving, report, failed)
    return report


def _collect(saving: Future, report: JobReport, failed: Callable[[AdainrtError], None]) -> None:
    try:
        report.written.append(saving.result())
    except AdainrtError as exc:
        failed(exc)


def stylize_video_file(stylizer: Stylizer, content: Path, output: Path, styles: list[StyleInput],
                       options: StylizeOptions, masks: Sequence[Image.Image] = (),
                       progress: Callable[[int, int], None] = lambda _d, _t: None) -> JobReport:
    """A video, frame by frame, with one (interpolated) style and optional temporal smoothing."""
    from adainrt.runtime.video import stylize_video

    check_video_job(output, options, masks)
    stats = video_style(stylizer, styles, options)
    result = stylize_video(stylizer, content, output, stats, options.alpha, options.content_size,
                           options.temporal_smoothing, options.overwrite, progress=progress)
    return JobReport(written=[result.path], video=result)


def video_style(stylizer: Stylizer, styles: list[StyleInput], options: StylizeOptions) -> StyleStats:
    """The one (interpolated) style of a video's frames, encoded once."""
    return interpolate(stylizer.styles_stats(styles), options.weights)


def check_video_job(output: Path, options: StylizeOptions, masks: Sequence[Image.Image] = ()) -> None:
    """What a video job refuses before any frame: image-only controls, an output that is no video."""
    from adainrt.runtime.video import VIDEO_SUFFIXES, is_video

    if masks or options.preserve_color:
        raise ControlError("masks and colour preservation apply to images; for video use alpha, "
                           "style weights and temporal smoothing")
    if not is_video(output):
        raise AdainrtError(f"{output}: the input is a video, so the output must be a video file "
                           f"({', '.join(VIDEO_SUFFIXES)})")
    check_replaceable(output)


def is_video_input(content: Path) -> bool:
    from adainrt.runtime.video import is_video

    return is_video(content)


def check_image_job(options: StylizeOptions) -> None:
    """Options that only mean something for video are refused for images, not ignored."""
    if options.temporal_smoothing:
        raise ControlError("temporal smoothing applies to video only (it averages statistics over frames)")


def add_style(name: str, image: str | os.PathLike, options: StylizeOptions,
              model_dir: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None,
              decoder: str | os.PathLike | None = None, bank: object | None = None,
              progress: Callable[[str], None] = lambda _msg: None, graphs: GraphSource | None = None,
              variant: str | None = None, backend: str = "auto") -> Path:
    """Encode a style image once and store its statistics under ``name`` in the style bank, with the
    network variant and the encoder they are for.

    ``auto`` computes them on the FP32 reference backend (onnxruntime's CPU provider, else OpenVINO in
    f32): they are reused for every image stylized with them, one style image takes a moment on a
    CPU, and no engine is built (on a TensorRT host, which runs FP16 only, FP32 graphs suffice). A
    named backend runs FP32 where it can, else its own precision (``--backend tensorrt`` for a
    folder of FP16 graphs alone)."""
    from adainrt.fileio import sha256_file
    from adainrt.runtime.style_bank import StyleBank

    bank = bank or StyleBank()
    bank.check_name(name, options.overwrite)
    choice = Choice(reference_backend(), "the FP32 reference") if backend == "auto" else choose(backend)
    precision = "fp32" if "fp32" in choice.backend.usable_precisions() else None
    with open_stylizer(model_dir, encoder, decoder, choice, precision=precision, progress=progress,
                       graphs=graphs, variant=variant) as stylizer:
        stats = stylizer.style_stats(prepare_image(image, options.style_size, crop=False))
        model = stylizer.model_info
    info = {"source": str(image), "source_sha256": sha256_file(image), "style_size": options.style_size, **model}
    return bank.add(name, stats, info, overwrite=options.overwrite)


def stylize_on_server(server: str, plan: OutputPlan, styles: Sequence[str], options: StylizeOptions,
                      api_key: str | None = None) -> JobReport:
    """Each planned image sent to an `adainrt serve`; the answers written as the local job writes them."""
    from adainrt.client import list_styles, output_format, save_served, stylize_remote

    if len(styles) != 1 and any(Path(s).is_file() for s in styles):
        raise ControlError("a server takes one style image, or the names of styles stored on it")
    if options.crop or options.style_size != StylizeOptions.style_size:
        raise ControlError("cropping and the style size are not sent to a server: resize or crop the images first, "
                           "or add the style to the server at the size wanted")
    formats = {dst: output_format(dst) for _src, dst in plan.pairs}  # an unknown suffix: refused before sending
    refuse_ambiguous_style(styles[0], lambda: list_styles(server, api_key), f"a style stored on {server}")
    style: str | bytes = Path(styles[0]).read_bytes() if Path(styles[0]).is_file() else ",".join(styles)
    report = JobReport()
    for src, dst in plan.pairs:
        data = stylize_remote(server, Path(src).read_bytes(), style, options.alpha, options.content_size, api_key,
                              jpeg=formats[dst] == "JPEG", style_weights=options.style_weights,
                              preserve_color=options.preserve_color)
        save_served(data, dst, overwrite=options.overwrite)
        report.written.append(dst)
    return report
