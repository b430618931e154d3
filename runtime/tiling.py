"""Large images in overlapping tiles, with statistics over the whole image (no seams).

The encoder and the decoder each run tile by tile; every tile reads ``overlap`` extra pixels
on each side and keeps only its centre, so with an overlap above the receptive field
(relu4_1: about 34 px each way; the decoder: about 30 px) every kept pixel equals the untiled
result. AdaIN runs between them on the assembled feature map, with global statistics.
Memory is bounded by the tile size plus the relu4_1 map (1/64 of the pixels x 512 channels).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Default tile (kept region) and overlap in image pixels; multiples of 8.
TILE = 1024
OVERLAP = 64


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(read_start, read_end, keep_start, keep_end) covering [0, length) along one axis."""
    out = []
    for keep_start in range(0, length, tile):
        keep_end = min(keep_start + tile, length)
        out.append((max(0, keep_start - overlap), min(length, keep_end + overlap), keep_start, keep_end))
    return out


def map_tiles(
    array: np.ndarray, fn: Callable[[np.ndarray], np.ndarray], tile: int, overlap: int, scale: float
) -> np.ndarray:
    """Apply ``fn`` (output size = ``scale`` x input size) tile by tile and stitch the centres."""
    height, width = array.shape[-2:]
    out: np.ndarray | None = None
    for r0, r1, k0, k1 in spans(height, tile, overlap):
        for c0, c1, j0, j1 in spans(width, tile, overlap):
            result = fn(np.ascontiguousarray(array[..., r0:r1, c0:c1]))
            if out is None:
                shape = (*result.shape[:-2], round(height * scale), round(width * scale))
                out = np.empty(shape, dtype=result.dtype)
            s = scale
            out[..., round(k0 * s):round(k1 * s), round(j0 * s):round(j1 * s)] = result[
                ..., round((k0 - r0) * s):round((k1 - r0) * s), round((j0 - c0) * s):round((j1 - c0) * s)
            ]
    assert out is not None
    return out


def pad_to_multiple(image: np.ndarray, multiple: int = 8) -> np.ndarray:
    """Reflect-pad bottom and right, as the graphs do, so tiles line up with the feature grid."""
    height, width = image.shape[-2:]
    pad = ((0, 0),) * (image.ndim - 2) + ((0, -height % multiple), (0, -width % multiple))
    return np.pad(image, pad, mode="reflect")


def encode_tiled(encode: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
                 tile: int = TILE, overlap: int = OVERLAP) -> np.ndarray:
    """relu4_1 of a large (N, 3, H, W) image, H and W padded to multiples of 8 first."""
    return map_tiles(pad_to_multiple(image), encode, tile, overlap, 1 / 8)


def decode_tiled(decode: Callable[[np.ndarray], np.ndarray], target: np.ndarray,
                 tile: int = TILE, overlap: int = OVERLAP) -> np.ndarray:
    """The decoder over a large target feature map, in feature-space tiles of tile/8."""
    return map_tiles(target, decode, tile // 8, overlap // 8, 8)
