"""Charts of the benchmarks, drawn with pillow alone: FPS against size per backend (the paper's
figures marked), and a serving load test's throughput and latency against concurrency."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw

from adainrt.fileio import atomic_path

if TYPE_CHECKING:
    from adainrt.benchmarks.bench import Timing
    from adainrt.benchmarks.serve_load import LoadResult

_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
HEIGHT, MARGIN = 560, 70
PANEL_WIDTH = 900


@dataclass
class Panel:
    """One chart: a line per series over categorical x values; ``marks``: labelled reference points."""

    title: str
    x_labels: list[str]
    series: dict[str, list[tuple[str, float]]]
    log: bool = True
    marks: list[tuple[str, float, str]] = field(default_factory=list)  # (x label, y, text)

    def draw(self, draw: ImageDraw.ImageDraw, left: int) -> None:
        values = [y for points in self.series.values() for _x, y in points if y > 0] + [y for _x, y, _t in self.marks]
        scale = math.log10 if self.log else (lambda v: v)
        low = scale(min(values) / 1.5) if self.log else 0.0
        high = scale(max(values) * 1.5) if self.log else max(values) * 1.15
        right = left + PANEL_WIDTH - MARGIN

        def xy(label: str, value: float) -> tuple[float, float]:
            x = left + MARGIN + (self.x_labels.index(label) + 0.5) / len(self.x_labels) * (PANEL_WIDTH - 2 * MARGIN)
            return x, HEIGHT - MARGIN - (scale(value) - low) / (high - low) * (HEIGHT - 2 * MARGIN)

        draw.rectangle([left + MARGIN, MARGIN, right, HEIGHT - MARGIN], outline="black")
        for tick in _ticks(low, high, self.log):
            _x, y = xy(self.x_labels[0], tick)
            draw.line([left + MARGIN, y, right, y], fill=(225, 225, 225))
            draw.text((left + 8, y - 6), f"{tick:g}", fill="black")
        for label in self.x_labels:
            x, _y = xy(label, 10 ** low if self.log else low)
            draw.text((x - 20, HEIGHT - MARGIN + 8), label, fill="black")
        for k, (name, points) in enumerate(self.series.items()):
            colour = _COLOURS[k % len(_COLOURS)]
            pixels = [xy(x, y) for x, y in points if y > 0]
            if len(pixels) > 1:
                draw.line(pixels, fill=colour, width=3)
            for x, y in pixels:
                draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
            draw.text((right - 200, MARGIN + 8 + 16 * k), name, fill=colour)
        for label, value, text in self.marks:
            x, y = xy(label, value)
            draw.polygon([(x, y - 7), (x + 6, y + 5), (x - 6, y + 5)], fill="black")
            draw.text((x + 9, y - 7), text, fill="black")
        draw.text((left + MARGIN, 20), self.title, fill="black")


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        return [m * 10.0 ** e for e in range(math.floor(low), math.ceil(high) + 1) for m in (1, 2, 5)
                if low <= math.log10(m * 10.0 ** e) <= high]
    step = 10 ** math.floor(math.log10(max(high, 1e-9) / 5))
    step *= next(m for m in (1, 2, 5, 10) if high / (m * step) <= 6)
    return [k * step for k in range(int(high / step) + 1)]


def save_panels(panels: Sequence[Panel], path: str | os.PathLike, overwrite: bool = False) -> None:
    """The panels side by side in one PNG, written atomically."""
    image = Image.new("RGB", (PANEL_WIDTH * len(panels), HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    for k, panel in enumerate(panels):
        panel.draw(draw, k * PANEL_WIDTH)
    with atomic_path(path, overwrite=overwrite) as tmp:
        image.save(tmp, format="PNG")


def plot_fps(results: Sequence[Timing], path: str | os.PathLike, overwrite: bool = False, path_kind: str = "full"
             ) -> None:
    """One line per backend (its ``path_kind`` rows), FPS on a log scale, the paper's points as triangles."""
    from adainrt.benchmarks.bench import PAPER_FPS

    rows = [r for r in results if r.path == path_kind]
    sizes = sorted({r.size for r in rows} | set(PAPER_FPS))
    series: dict[str, list[tuple[str, float]]] = {}
    for row in sorted(rows, key=lambda r: r.size):
        series.setdefault(row.backend, []).append((f"{row.size}x{row.size}", row.fps))
    marks = [(f"{size}x{size}", fps, f"paper {fps:g} FPS") for size, fps in PAPER_FPS.items()]
    save_panels([Panel(f"adainrt bench: FPS ({path_kind} path), log scale; triangles: Huang & Belongie 2017 "
                       "(Titan X GPU)", [f"{s}x{s}" for s in sizes], series, log=True, marks=marks)], path, overwrite)


def plot_serve(results: Sequence[LoadResult], path: str | os.PathLike, in_process: float | None = None,
               overwrite: bool = False) -> None:
    """Throughput (the in-process Stylizer's marked) and p50/p95/p99 latency against concurrency."""
    levels = [str(r.concurrency) for r in results]
    throughput = Panel("adainrt bench-serve: requests/s by concurrency" + ("; triangle: in-process Stylizer"
                                                                             if in_process else ""),
                       levels, {"requests/s": [(str(r.concurrency), r.throughput) for r in results]}, log=False,
                       marks=[(levels[-1], in_process, f"in-process {in_process:.1f}/s")] if in_process else [])
    latency = Panel("latency (ms, log scale) by concurrency", levels,
                    {name: [(str(r.concurrency), getattr(r, f"{name}_ms")) for r in results]
                     for name in ("p50", "p95", "p99")}, log=True)
    save_panels([throughput, latency], path, overwrite)
