"""FPS against image size per backend, with the paper's figures marked (drawn with pillow alone)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from PIL import Image, ImageDraw

from adainrt.benchmarks.bench import PAPER_FPS, Timing
from adainrt.fileio import atomic_path

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
WIDTH, HEIGHT, MARGIN = 900, 560, 70


def plot_fps(results: Sequence[Timing], path: str | os.PathLike, overwrite: bool = False, path_kind: str = "full"
             ) -> None:
    """One line per backend (its ``path_kind`` rows), FPS on a log scale, the paper's points as stars."""
    rows = [r for r in results if r.path == path_kind]
    sizes = sorted({r.size for r in rows} | set(PAPER_FPS))
    fps_values = [r.fps for r in rows] + list(PAPER_FPS.values())
    low, high = math.log10(min(fps_values) / 1.5), math.log10(max(fps_values) * 1.5)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)

    def xy(size: int, fps: float) -> tuple[float, float]:
        x = MARGIN + (sizes.index(size) + 0.5) / len(sizes) * (WIDTH - 2 * MARGIN)
        y = HEIGHT - MARGIN - (math.log10(fps) - low) / (high - low) * (HEIGHT - 2 * MARGIN)
        return x, y

    draw.rectangle([MARGIN, MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN], outline="black")
    for exponent in range(math.floor(low), math.ceil(high) + 1):
        for mantissa in (1, 2, 5):
            fps = mantissa * 10.0 ** exponent
            if low <= math.log10(fps) <= high:
                _x, y = xy(sizes[0], fps)
                draw.line([MARGIN, y, WIDTH - MARGIN, y], fill=(225, 225, 225))
                draw.text((8, y - 6), f"{fps:g}", fill="black")
    for size in sizes:
        x, _y = xy(size, 1.0)
        draw.text((x - 20, HEIGHT - MARGIN + 8), f"{size}x{size}", fill="black")
    backends = list(dict.fromkeys(r.backend for r in rows))
    for k, backend in enumerate(backends):
        colour = _COLOURS[k % len(_COLOURS)]
        points = [xy(r.size, r.fps) for r in sorted((r for r in rows if r.backend == backend), key=lambda r: r.size)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
        draw.text((WIDTH - MARGIN + 6 - 200, MARGIN + 8 + 16 * k), backend, fill=colour)
    for size, fps in PAPER_FPS.items():
        x, y = xy(size, fps)
        draw.polygon([(x, y - 7), (x + 6, y + 5), (x - 6, y + 5)], fill="black")
        draw.text((x + 9, y - 7), f"paper {fps:g} FPS", fill="black")
    draw.text((MARGIN, 20), f"adainrt bench: FPS ({path_kind} path), log scale; triangles: Huang & Belongie 2017 "
                            "(Titan X GPU)", fill="black")
    with atomic_path(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")
