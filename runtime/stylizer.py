"""The Python API for stylizing: ONNX graphs in onnxruntime, no torch needed.

A :class:`Stylizer` runs the ``split`` graphs (encoder, style statistics, decoder) so a style
is encoded once and cached as its 512 means and 512 standard deviations; later frames with the
same style only run the encoder and the decoder.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from adainrt.runtime.providers import Choice, choose_backend
from PIL import Image

from adainrt.errors import AdainrtError, ImageError, ModelError
from adainrt.images import check_size, from_tensor, to_pil, to_tensor

GRAPH_FILES = {"encoder": "adain_encoder.onnx", "style": "adain_style.onnx",
               "decoder": "adain_decoder.onnx", "full": "adain_full.onnx"}


#: Largest content (H x W) stylized in one pass by default: 4096 x 4096.
DEFAULT_MAX_PIXELS = 4096 * 4096


class InvalidArgument(AdainrtError, ValueError):
    """A value outside what the method admits (alpha outside [0, 1], ...)."""


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgument(
            f"alpha must be in [0, 1] (0 = the content reconstructed, 1 = fully stylized), got {alpha}"
        )
    return alpha


@dataclass(frozen=True)
class StyleStats:
    """A style as AdaIN sees it: relu4_1 channel means and stds, each (1, 512, 1, 1) float32."""

    mean: np.ndarray
    std: np.ndarray


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

    def run(self, **feeds: np.ndarray) -> list[np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelError(f"{self.path}: inputs {sorted(missing)} not given")
        return self.session.run(None, {name: feeds[name] for name in self.input_names})


def _load_graphs(model_dir: Path, names: tuple[str, ...], choice: Choice) -> dict[str, OrtGraph]:
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model folder; create one with "
                         f"`adainrt export --output {model_dir}`")
    graphs = {name: OrtGraph(model_dir / GRAPH_FILES[name], choice) for name in names}
    hashes = {g.metadata.get("encoder_hash") for g in graphs.values()} | {None}
    if len(hashes - {None}) > 1:
        raise ModelError(f"{model_dir}: its graphs come from different encoders ({sorted(hashes - {None})}); "
                         "export them again together")
    return graphs


class Stylizer:
    """AdaIN stylization over onnxruntime.

    >>> stylizer = Stylizer("models/")            # a folder written by `adainrt export`
    >>> out = stylizer.stylize(photo, painting, alpha=0.8)   # PIL or HxWx3 numpy in, same out
    """

    def __init__(self, model_dir: str | os.PathLike, backend: str = "auto", style_cache_size: int = 32,
                 max_pixels: int = DEFAULT_MAX_PIXELS):
        self.model_dir = Path(model_dir)
        self.choice = choose_backend(backend)
        graphs = _load_graphs(self.model_dir, ("encoder", "style", "decoder"), self.choice)
        self.encoder, self.style_graph, self.decoder = graphs["encoder"], graphs["style"], graphs["decoder"]
        self.metadata = self.decoder.metadata
        self._style_cache: OrderedDict[str, StyleStats] = OrderedDict()
        self._style_cache_size = style_cache_size
        self.max_pixels = max_pixels

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

    def encode(self, content: np.ndarray) -> np.ndarray:
        """relu4_1 of a (N, 3, H, W) float32 content batch (padded to a multiple of 8 inside)."""
        height, width = content.shape[-2:]
        check_size((width, height), "content")
        if height * width > self.max_pixels:
            raise ImageError(
                f"content is {width}x{height} ({height * width / 1e6:.1f} megapixels), above this "
                f"stylizer's limit of {self.max_pixels / 1e6:.1f}: the first layers alone would need "
                f"~{height * width * 64 * 4 * 3 / 2**30:.0f} GiB. Downscale it (--content-size) or raise max_pixels."
            )
        return self.encoder.run(content=content)[0]

    def decode(self, features: np.ndarray, stats: StyleStats, alpha: float, size: tuple[int, int]) -> np.ndarray:
        """Decoder graph, cropped to the content's (H, W)."""
        alpha_in = np.array([check_alpha(alpha)], dtype=np.float32)
        image = self.decoder.run(content_features=features, style_mean=stats.mean,
                                 style_std=stats.std, alpha=alpha_in)[0]
        return image[..., : size[0], : size[1]]

    def stylize(
        self,
        content: Image.Image | np.ndarray,
        style: Image.Image | np.ndarray | StyleStats,
        alpha: float = 1.0,
    ) -> Image.Image | np.ndarray:
        """Stylize ``content`` with ``style``; the result has the content's size and type.

        PIL in -> PIL out; an HxWx3 uint8 array -> uint8 array; a float array in [0, 1] ->
        float32 array in [0, 1].
        """
        check_alpha(alpha)
        stats = style if isinstance(style, StyleStats) else self.style_stats(style)
        pil = to_pil(content, "content")
        array = to_tensor(pil)
        out = self.decode(self.encode(array), stats, alpha, array.shape[-2:])
        return _like(content, out)


def _like(reference: Image.Image | np.ndarray, out: np.ndarray) -> Image.Image | np.ndarray:
    if isinstance(reference, Image.Image):
        return from_tensor(out)
    if reference.dtype == np.uint8:
        return np.asarray(from_tensor(out))
    return np.clip(out[0].transpose(1, 2, 0), 0.0, 1.0).astype(np.float32)
