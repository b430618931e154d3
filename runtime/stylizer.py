"""The Python API for stylizing: the exported graphs on any backend, no torch needed.

A :class:`Stylizer` runs the ``split`` graphs (encoder, style statistics, decoder) so a style
is encoded once and cached as its relu4_1 means and standard deviations (512 each in the full
network, 128 in lite); later frames with the
same style only run the encoder and the decoder.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adainrt.contract import (
    FORMS,
    check_loaded_graph,
    graph_precision,
    manifest_variant,
    read_manifest,
    verified_graphs,
)
from adainrt.errors import AdainrtError, ImageError
from adainrt.images import check_size, from_tensor, to_pil, to_tensor
from adainrt.runtime.backend import Choice, Runner, choose
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
    match_mean_color,
    merge_luminance,
)
from adainrt.runtime.tiling import OVERLAP, decode_tiled, encode_tiled

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


class Stylizer:
    """AdaIN stylization over any registered backend, no torch needed.

    >>> with Stylizer("models/") as stylizer:                   # a folder written by `adainrt export`
    ...     out = stylizer.stylize(photo, painting, alpha=0.8)  # PIL or HxWx3 numpy in, same out

    The folder's graphs are checked against its manifest. A backend that builds engines
    (tensorrt) prepares them here, once, into the cache; the runners only load them.
    """

    def __init__(self, model_dir: str | os.PathLike, backend: str | Choice = "auto", style_cache_size: int = 32,
                 max_pixels: int = DEFAULT_MAX_PIXELS, tiling: bool = True, precision: str | None = None):
        if max_pixels < 1:
            raise InvalidArgument(f"max_pixels must be a positive number of pixels, got {max_pixels}")
        self.model_dir = Path(model_dir)
        self.choice: Choice = choose(backend, precision)
        self.precision, self.precision_reason = self.choice.backend.precision(precision)
        manifest = read_manifest(self.model_dir)
        paths = verified_graphs(self.model_dir, FORMS["split"], graph_precision(self.precision), manifest)
        self.runners: dict[str, Runner] = {}
        try:
            for graph, path in paths.items():
                runner = self.runners[graph] = self.choice.backend.load(path, self.precision)
                check_loaded_graph(path, graph, runner.input_names, runner.output_names, runner.metadata, manifest)
        except BaseException:
            self.close()
            raise
        self.encoder, self.style_graph, self.decoder = (self.runners[g] for g in FORMS["split"])
        self.metadata = self.decoder.metadata
        self.variant = manifest_variant(manifest)
        self.encoder_hash = str(manifest.get("encoder_hash", ""))
        self._style_cache: OrderedDict[str, StyleStats] = OrderedDict()
        self._style_cache_size = style_cache_size
        self.max_pixels = max_pixels
        self.tiling = tiling

    @property
    def backend(self) -> str:
        return self.choice.name

    @property
    def model_info(self) -> dict[str, str]:
        """What statistics computed here are tied to (a stored style records it): the network variant
        and the encoder's weights."""
        return {"variant": self.variant.name, "encoder_hash": self.encoder_hash}

    def close(self) -> None:
        """Free every runner (device memory, sessions); the stylizer cannot run afterwards. Every
        runner is closed even when one fails to."""
        failures = []
        for runner in self.runners.values():
            try:
                runner.close()
            except Exception as exc:  # keep freeing the others
                failures.append(exc)
        if failures:
            raise failures[0]

    def __enter__(self) -> Stylizer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def style_stats(self, style: Image.Image | np.ndarray) -> StyleStats:
        """Encode a style image once; repeated calls with the same pixels hit the cache."""
        array = to_tensor(to_pil(style, "style"))
        key = hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()
        if key in self._style_cache:
            self._style_cache.move_to_end(key)
            return self._style_cache[key]
        out = self.style_graph.infer({"style": array})
        stats = StyleStats(out["style_mean"], out["style_std"])
        self._style_cache[key] = stats
        while len(self._style_cache) > self._style_cache_size:
            self._style_cache.popitem(last=False)
        return stats

    def _tile(self) -> int:
        """Largest kept tile (multiple of 8) whose read region fits ``max_pixels`` and the backend's
        largest side."""
        side = min(int(self.max_pixels ** 0.5), self.choice.backend.max_side or 1 << 30) - 2 * OVERLAP
        return max(64, side // 8 * 8)

    def _too_big(self, height: int, width: int) -> bool:
        max_side = self.choice.backend.max_side
        if height * width <= self.max_pixels and (max_side is None or max(height, width) <= max_side):
            return False
        if not self.tiling:
            raise ImageError(
                f"content is {width}x{height} ({height * width / 1e6:.1f} megapixels), above this "
                f"stylizer's limit of {self.max_pixels / 1e6:.1f} for one pass. Downscale it "
                "(content size) or enable tiling."
            ).hinted("downscale with --content-size or raise --max-pixels")
        return True

    def _encode_once(self, content: np.ndarray, keep: bool = False) -> Any:
        return self.encoder.infer({"content": content}, keep=("content_features",) if keep else ())["content_features"]

    def encode(self, content: np.ndarray, on_device: bool = False) -> Any:
        """relu4_1 of a (N, 3, H, W) float32 content batch (padded to a multiple of 8 inside).

        Content above ``max_pixels`` is encoded in overlapping tiles. ``on_device``: leave the
        features where the encoder ran them (a device value of the backend, whose only use is
        :meth:`decode`), saving two host round trips.
        """
        height, width = content.shape[-2:]
        check_size((width, height), "content")
        if self._too_big(height, width):
            return encode_tiled(self._encode_once, content, self._tile())
        return self._encode_once(content, keep=on_device)

    def decode(self, features: Any, stats: StyleStats, alpha: float | Sequence[float],
               size: tuple[int, int]) -> np.ndarray:
        """AdaIN with ``stats``, the trade-off with ``alpha``, then the decoder; cropped to ``size``.

        ``size`` is the content's (height, width), which also decides tiling, as in :meth:`encode`.
        A batch may carry statistics and an alpha per item (tiled content: one image, one alpha).
        """
        for one in np.atleast_1d(alpha):
            check_alpha(one)
        if self._too_big(*size):
            return self.decode_target(blend(features, adain(features, stats), alpha), size)
        image = self.decoder.infer(decoder_feeds(features, stats, alpha))["image"]
        return image[..., : size[0], : size[1]]

    def decode_target(self, target: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """g(target) for a feature map made on the host (masks, smoothing, tiles).

        The decoder graph applies AdaIN first; given the target's own statistics (computed
        the same way) with alpha 1 that is the identity, so any target passes through g.
        """
        def run(part: np.ndarray) -> np.ndarray:
            mean, std = feature_stats(part)
            own = StyleStats(mean.astype(np.float32), std.astype(np.float32))
            return self.decoder.infer(decoder_feeds(part, own, 1.0))["image"]

        image = decode_tiled(run, target, self._tile()) if self._too_big(*size) else run(target)
        return image[..., : size[0], : size[1]]

    def _check_stats(self, stats: StyleStats) -> StyleStats:
        """Statistics given as they are must be this network's: a style of another variant has another
        length (128 for lite, 512 for full) and would fail deep inside the backend."""
        want = (1, self.variant.feature_channels, 1, 1)
        for array in (stats.mean, stats.std):
            if np.shape(array) != want:
                raise ControlError(f"style statistics of shape {np.shape(array)}, but the {self.variant.name} "
                                   f"network's are {want}: compute them with this model (a style of another "
                                   "network variant does not fit)")
        return stats

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
                out.append(self._check_stats(one))
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
        smoother: ContentSmoother | None = None,
    ) -> Image.Image | np.ndarray:
        """Stylize ``content``; the result has the content's size and type.

        This is the one place the controls compose, for images, folders and video frames alike.
        ``style``: an image (PIL, HxWx3 array), stored :class:`StyleStats`, or a list of them.
        Several styles are interpolated with ``style_weights`` (normalized to sum 1), or,
        with ``mask``, each takes a region: one grey-scale mask for two styles (white takes
        the first) or one mask per style. ``preserve_color``: "color" recolours the style to
        the content's colour mean and covariance; "luminance" stylizes luminance only and
        keeps the content's chrominance. ``smoother``: content statistics averaged over the
        frames of a video (temporal smoothing). Content above ``max_pixels`` is tiled.
        PIL in -> PIL out; uint8 array -> uint8 array; float array in [0, 1] -> float32 array.
        """
        check_alpha(alpha)
        if mask is not None and style_weights is not None:
            raise ControlError("give either style weights (interpolation) or a mask (regions), not both")
        content_rgb, array, styles = self._prepare(content, style, preserve_color)
        size = array.shape[-2:]
        smoothing = smoother is not None and smoother.momentum > 0.0
        if mask is None and not smoothing:  # one pass; on a GPU relu4_1 stays there
            out = self.decode(self.encode(array, on_device=True), interpolate(styles, style_weights), alpha, size)
        else:
            features = self.encode(array)
            if mask is None:
                target = adain(features, interpolate(styles, style_weights), content_stats=smoother(features))
            else:
                masks = [mask_array(m) for m in (mask if isinstance(mask, list) else [mask])]
                target = masked_target(features, masks_for_styles(masks, len(styles)), styles)
            out = self.decode_target(blend(features, target, alpha), size)
        return _finish(content, out, content_rgb, preserve_color)

    def stylize_many(self, requests: Sequence[StylizeRequest]) -> list[Image.Image | np.ndarray]:
        """Several stylizations in as few runs as possible: contents of the same size share one
        encoder and one decoder run, each image with its own style and alpha (a server's batch).

        At most ``max_pixels`` of content go into one run (and the backend's largest batch);
        content that needs tiling runs alone. Results equal :meth:`stylize`'s, in order.
        """
        prepared = []
        for request in requests:
            check_alpha(request.alpha)
            content_rgb, array, styles = self._prepare(request.content, request.style, request.preserve_color)
            prepared.append((content_rgb, array, interpolate(styles, request.style_weights)))
        outputs: list[np.ndarray | None] = [None] * len(prepared)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, (_rgb, array, _stats) in enumerate(prepared):
            by_size.setdefault(tuple(array.shape[-2:]), []).append(index)
        for (height, width), indices in by_size.items():
            per_run = 1 if self._too_big(height, width) else max(1, self.max_pixels // (height * width))
            per_run = min(per_run, self.choice.backend.max_batch or per_run)
            for start in range(0, len(indices), per_run):
                chunk = indices[start:start + per_run]
                batch = np.concatenate([prepared[i][1] for i in chunk])
                stats = StyleStats(np.concatenate([prepared[i][2].mean for i in chunk]),
                                   np.concatenate([prepared[i][2].std for i in chunk]))
                alphas = [requests[i].alpha for i in chunk]
                images = self.decode(self.encode(batch, on_device=True), stats,
                                     alphas if len(chunk) > 1 else alphas[0], (height, width))
                for k, i in enumerate(chunk):
                    outputs[i] = images[k:k + 1]
        return [_finish(r.content, out, rgb, r.preserve_color)
                for r, out, (rgb, _a, _s) in zip(requests, outputs, prepared, strict=True)]

    def _prepare(self, content: Image.Image | np.ndarray, style: StyleInput | list[StyleInput],
                 preserve_color: str | None) -> tuple[np.ndarray, np.ndarray, list[StyleStats]]:
        """(content RGB HxWx3 in [0, 1], the network's (1, 3, H, W) input, each style's statistics)."""
        if preserve_color not in PRESERVE_COLOR_MODES:
            raise ControlError(f"preserve_color must be one of {PRESERVE_COLOR_MODES}, got {preserve_color!r}")
        content_rgb = np.asarray(to_pil(content, "content"), np.float32) / 255.0
        styles = self.styles_stats(style, content_rgb, preserve_color)
        source = luminance_image(content_rgb) if preserve_color == "luminance" else content_rgb
        return content_rgb, np.ascontiguousarray(source.transpose(2, 0, 1)[None]), styles


@dataclass(frozen=True)
class StylizeRequest:
    """One image of :meth:`Stylizer.stylize_many`: what :meth:`Stylizer.stylize` takes, less masks
    and temporal smoothing (which need the image's own features on the host)."""

    content: Image.Image | np.ndarray
    style: StyleInput | list[StyleInput]
    alpha: float = 1.0
    style_weights: list[float] | None = None
    preserve_color: str | None = None


def _finish(content: Image.Image | np.ndarray, out: np.ndarray, content_rgb: np.ndarray,
            preserve_color: str | None) -> Image.Image | np.ndarray:
    """The decoder's output as the caller's type; luminance mode puts the content's chrominance back,
    colour mode its mean colour (the decoder's own cast removed)."""
    if preserve_color in ("luminance", "color"):
        restore = merge_luminance if preserve_color == "luminance" else match_mean_color
        out = restore(out[0].transpose(1, 2, 0), content_rgb).transpose(2, 0, 1)[None]
    return _like(content, out)


class ContentSmoother:
    """Exponential moving average of the content's relu4_1 mean and std across video frames."""

    def __init__(self, momentum: float):
        if not 0.0 <= momentum < 1.0:
            raise InvalidArgument(f"temporal smoothing must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.state: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = feature_stats(features)
        if self.state is None or self.momentum == 0.0:
            self.state = (mean, std)
        else:
            m = self.momentum
            self.state = (m * self.state[0] + (1 - m) * mean, m * self.state[1] + (1 - m) * std)
        return self.state


def decoder_feeds(features: Any, stats: StyleStats, alpha: float | Sequence[float]) -> dict:
    """The decoder graph's inputs: statistics and alpha per item of the content batch. One style (or
    one alpha) is repeated for every item; the graph takes them per item, so a batch may mix both."""
    shape = features.shape() if callable(features.shape) else features.shape  # an OrtValue's is a method
    batch = shape[0]
    mean, std = stats.mean, stats.std
    if mean.shape[0] != batch:
        mean, std = np.repeat(mean, batch, axis=0), np.repeat(std, batch, axis=0)
    alphas = np.asarray(alpha, dtype=np.float32).reshape(-1)
    if alphas.shape[0] != batch:
        alphas = np.repeat(alphas, batch)
    return {"content_features": features, "style_mean": mean, "style_std": std, "alpha": alphas}


def blend(features: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """(1 - alpha) f(c) + alpha t."""
    return ((1.0 - alpha) * features + alpha * target).astype(np.float32)


def _like(reference: Image.Image | np.ndarray, out: np.ndarray) -> Image.Image | np.ndarray:
    if isinstance(reference, Image.Image):
        return from_tensor(out)
    if reference.dtype == np.uint8:
        return np.asarray(from_tensor(out))
    return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)
