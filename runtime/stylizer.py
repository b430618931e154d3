"""The Python API for stylizing: ONNX graphs in onnxruntime, no torch needed.

A :class:`Stylizer` runs the ``split`` graphs (encoder, style statistics, decoder) so a style
is encoded once and cached as its 512 means and 512 standard deviations; later frames with the
same style only run the encoder and the decoder.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from adainrt.errors import AdainrtError, ImageError, ModelError
from adainrt.images import check_size, from_tensor, to_pil, to_tensor
from adainrt.runtime.controls import (
    ControlError,
    StyleStats,
    adain,
    feature_stats,
    interpolate,
    luminance_image,
    mask_array,
    masked_target,
    masks_for_styles,
    match_color,
    match_luminance,
    merge_luminance,
)
from adainrt.runtime.providers import Choice, choose_backend
from adainrt.runtime.tiling import OVERLAP, decode_tiled, encode_tiled

GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
GRAPH_NAMES = {"full": "adain_full", "encoder": "adain_encoder", "style": "adain_style", "decoder": "adain_decoder"}
#: Which graphs make up each export form.
FORM_GRAPHS = {"full": ("full",), "split": ("encoder", "style", "decoder")}
PRECISIONS = ("fp32", "fp16")


def graph_file(graph: str, precision: str = "fp32") -> str:
    """File name of an exported graph: adain_full.onnx, adain_full_fp16.onnx, ..."""
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return f"{GRAPH_NAMES[graph]}{'_fp16' if precision == 'fp16' else ''}.onnx"


#: Largest content (H x W) run in one pass by default; larger content is tiled.
DEFAULT_MAX_PIXELS = 2048 * 2048
PRESERVE_COLOR_MODES = (None, "color", "luminance")
StyleInput = Image.Image | np.ndarray | StyleStats
MaskInput = Image.Image | np.ndarray


class InvalidArgument(AdainrtError, ValueError):
    """A value outside what the method admits (alpha outside [0, 1], ...)."""


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgument(
            f"alpha must be in [0, 1] (0 = the content reconstructed, 1 = fully stylized), got {alpha}"
        )
    return alpha


class OrtGraph:
    """One ONNX graph in one onnxruntime session, with its adainrt metadata."""

    def __init__(self, path: str | os.PathLike, choice: Choice):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX file; create it with `adainrt export`")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=choice.providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()
        # Where outputs bound with IO binding live: the GPU for the CUDA and TensorRT providers.
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"

    def _check_feeds(self, feeds: Mapping[str, object]) -> None:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelError(f"{self.path}: inputs {sorted(missing)} not given")

    def run(self, **feeds: np.ndarray) -> list[np.ndarray]:
        self._check_feeds(feeds)
        return self.session.run(None, {name: feeds[name] for name in self.input_names})

    def run_bound(self, feeds: Mapping[str, np.ndarray | ort.OrtValue],
                  keep: Collection[str] = ()) -> list[np.ndarray | ort.OrtValue]:
        """Run through onnxruntime's IO binding.

        Inputs may be OrtValues already on this graph's device (another graph's kept output);
        outputs named in ``keep`` stay there as OrtValues instead of being copied to the host.
        On the CUDA/TensorRT providers this hands relu4_1 from the encoder to the decoder
        without the two host round trips (8 MB each way at 512x512); on the CPU it is the
        same code path with host memory.
        """
        self._check_feeds(feeds)
        binding = self.session.io_binding()
        for name in self.input_names:
            value = feeds[name]
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return [value if name in keep else value.numpy() for name, value in zip(self.output_names, values)]


def _load_graphs(model_dir: Path, names: tuple[str, ...], choice: Choice, precision: str) -> dict[str, OrtGraph]:
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model folder; create one with "
                         f"`adainrt export --output {model_dir}`")
    graphs = {name: OrtGraph(model_dir / graph_file(name, precision), choice) for name in names}
    hashes = {g.metadata.get("encoder_hash") for g in graphs.values()} | {None}
    if len(hashes - {None}) > 1:
        raise ModelError(f"{model_dir}: its graphs come from different encoders ({sorted(hashes - {None})}); "
                         "export them again together")
    return graphs


def _load_engines(model_dir: Path, names: tuple[str, ...]) -> dict:
    """TensorRT engines of the FP16 graphs, built once into the cache (same ``run`` as OrtGraph)."""
    from adainrt.runtime.tensorrt_engine import TensorRTRunner, cached_engine

    paths = {name: model_dir / graph_file(name, "fp16") for name in names}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ModelError(f"the tensorrt backend runs the FP16 graphs: {', '.join(missing)} missing; "
                         f"run `adainrt export --output {model_dir} --precision fp16`")
    return {name: TensorRTRunner(cached_engine(path)) for name, path in paths.items()}


class Stylizer:
    """AdaIN stylization over onnxruntime.

    >>> stylizer = Stylizer("models/")            # a folder written by `adainrt export`
    >>> out = stylizer.stylize(photo, painting, alpha=0.8)   # PIL or HxWx3 numpy in, same out
    """

    def __init__(self, model_dir: str | os.PathLike, backend: str = "auto", style_cache_size: int = 32,
                 max_pixels: int = DEFAULT_MAX_PIXELS, tiling: bool = True, precision: str = "fp32"):
        self.model_dir = Path(model_dir)
        self.choice = choose_backend(backend)
        if self.choice.backend == "tensorrt":
            graphs = _load_engines(self.model_dir, ("encoder", "style", "decoder"))
        else:
            graphs = _load_graphs(self.model_dir, ("encoder", "style", "decoder"), self.choice, precision)
        self.encoder, self.style_graph, self.decoder = graphs["encoder"], graphs["style"], graphs["decoder"]
        self.metadata = self.decoder.metadata
        self._style_cache: OrderedDict[str, StyleStats] = OrderedDict()
        self._style_cache_size = style_cache_size
        self.max_pixels = max_pixels
        self.tiling = tiling

    @property
    def backend(self) -> str:
        return self.choice.backend

    def style_stats(self, style: Image.Image | np.ndarray) -> StyleStats:
        """Encode a style image once; repeated calls with the same pixels hit the cache."""
        array = to_tensor(to_pil(style, "style"))
        key = hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()
        if key in self._style_cache:
            self._style_cache.move_to_end(key)
            return self._style_cache[key]
        mean, std = self.style_graph.run(style=array)
        stats = StyleStats(mean, std)
        self._style_cache[key] = stats
        while len(self._style_cache) > self._style_cache_size:
            self._style_cache.popitem(last=False)
        return stats

    def _tile(self) -> int:
        """Largest kept tile (multiple of 8) whose read region fits ``max_pixels``."""
        side = int(self.max_pixels ** 0.5) - 2 * OVERLAP
        return max(64, side // 8 * 8)

    def _too_big(self, height: int, width: int) -> bool:
        if height * width <= self.max_pixels:
            return False
        if not self.tiling:
            raise ImageError(
                f"content is {width}x{height} ({height * width / 1e6:.1f} megapixels), above this "
                f"stylizer's limit of {self.max_pixels / 1e6:.1f} for one pass. Downscale it "
                "(--content-size) or enable tiling."
            )
        return True

    def encode(self, content: np.ndarray, on_device: bool = False) -> np.ndarray | ort.OrtValue:
        """relu4_1 of a (N, 3, H, W) float32 content batch (padded to a multiple of 8 inside).

        Content above ``max_pixels`` is encoded in overlapping tiles. ``on_device``: leave the
        features where the encoder ran them (an OrtValue on the GPU for the CUDA/TensorRT
        providers, whose only use is :meth:`decode`), saving two host round trips.
        """
        height, width = content.shape[-2:]
        check_size((width, height), "content")
        if self._too_big(height, width):
            return encode_tiled(lambda tile: self.encoder.run(content=tile)[0], content, self._tile())
        if on_device:
            return self.encoder.run_bound({"content": content}, keep=self.encoder.output_names)[0]
        return self.encoder.run(content=content)[0]

    def decode(self, features: np.ndarray | ort.OrtValue, stats: StyleStats, alpha: float,
               size: tuple[int, int]) -> np.ndarray:
        """AdaIN with ``stats``, the trade-off with ``alpha``, then the decoder; cropped to ``size``.

        ``size`` is the content's (height, width), which also decides tiling, as in :meth:`encode`.
        """
        check_alpha(alpha)
        if self._too_big(*size):
            return self.decode_target(blend(features, adain(features, stats), alpha), size)
        image = self.decoder.run_bound(decoder_feeds(features, stats, alpha))[0]
        return image[..., : size[0], : size[1]]

    def decode_target(self, target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """g(target) for a feature map made on the host (masks, smoothing, tiles).

        The decoder graph applies AdaIN first; given the target's own statistics (computed
        the same way) with alpha 1 that is the identity, so any target passes through g.
        """
        def run(part: np.ndarray) -> np.ndarray:
            mean, std = feature_stats(part)
            own = StyleStats(mean.astype(np.float32), std.astype(np.float32))
            return self.decoder.run(**decoder_feeds(part, own, 1.0))[0]

        image = decode_tiled(run, target, self._tile()) if self._too_big(*size) else run(target)
        return image[..., : size[0], : size[1]]

    def styles_stats(self, style: StyleInput | list[StyleInput], content_rgb: np.ndarray | None = None,
                     preserve_color: str | None = None) -> list[StyleStats]:
        """Statistics of each style (images encoded once, cached; stored statistics as they are).

        ``preserve_color`` recolours style images to ``content_rgb`` (HxWx3 in [0, 1]) first.
        """
        styles = list(style) if isinstance(style, list | tuple) else [style]
        if not styles:
            raise ControlError("no style given")
        out = []
        for one in styles:
            if isinstance(one, StyleStats):
                if preserve_color:
                    raise ControlError("colour preservation recolours the style image: give the image, "
                                       "not stored statistics")
                out.append(one)
                continue
            rgb = np.asarray(to_pil(one, "style"), np.float32) / 255.0
            if preserve_color == "color":
                rgb = match_color(rgb, content_rgb)
            elif preserve_color == "luminance":
                rgb = match_luminance(rgb, content_rgb)
            out.append(self.style_stats(rgb))
        return out

    def stylize(
        self,
        content: Image.Image | np.ndarray,
        style: StyleInput | list[StyleInput],
        alpha: float = 1.0,
        *,
        style_weights: list[float] | None = None,
        mask: MaskInput | list[MaskInput] | None = None,
        preserve_color: str | None = None,
    ) -> Image.Image | np.ndarray:
        """Stylize ``content``; the result has the content's size and type.

        ``style``: an image (PIL, HxWx3 array), stored :class:`StyleStats`, or a list of them.
        Several styles are interpolated with ``style_weights`` (normalized to sum 1), or,
        with ``mask``, each takes a region: one grey-scale mask for two styles (white takes
        the first) or one mask per style. ``preserve_color``: "color" recolours the style to
        the content's colour mean and covariance; "luminance" stylizes luminance only and
        keeps the content's chrominance. PIL in -> PIL out; uint8 array -> uint8 array;
        float array in [0, 1] -> float32 array.
        """
        check_alpha(alpha)
        if preserve_color not in PRESERVE_COLOR_MODES:
            raise ControlError(f"preserve_color must be one of {PRESERVE_COLOR_MODES}, got {preserve_color!r}")
        content_rgb = np.asarray(to_pil(content, "content"), np.float32) / 255.0
        styles = self.styles_stats(style, content_rgb, preserve_color)
        source = luminance_image(content_rgb) if preserve_color == "luminance" else content_rgb
        array = np.ascontiguousarray(source.transpose(2, 0, 1)[None])
        size = array.shape[-2:]
        if mask is None:
            out = self.decode(self.encode(array, on_device=True), interpolate(styles, style_weights), alpha, size)
        else:
            features = self.encode(array)
            if style_weights is not None:
                raise ControlError("give either style weights (interpolation) or a mask (regions), not both")
            masks = [mask_array(m) for m in (mask if isinstance(mask, list) else [mask])]
            target = masked_target(features, masks_for_styles(masks, len(styles)), styles)
            out = self.decode_target(blend(features, target, alpha), size)
        if preserve_color == "luminance":
            merged = merge_luminance(out[0].transpose(1, 2, 0), content_rgb)
            out = merged.transpose(2, 0, 1)[None]
        return _like(content, out)


def decoder_feeds(features: np.ndarray | ort.OrtValue, stats: StyleStats, alpha: float) -> dict:
    """The decoder graph's inputs."""
    return {"content_features": features, "style_mean": stats.mean, "style_std": stats.std,
            "alpha": np.array([alpha], dtype=np.float32)}


def blend(features: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) f(c) + alpha t."""
    return ((1.0 - alpha) * features + alpha * target).astype(np.float32)


def _like(reference: Image.Image | np.ndarray, out: np.ndarray) -> Image.Image | np.ndarray:
    if isinstance(reference, Image.Image):
        return from_tensor(out)
    if reference.dtype == np.uint8:
        return np.asarray(from_tensor(out))
    return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)
