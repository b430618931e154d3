"""Flicker of stylized video with and without temporal smoothing, on a generated clip.

    python -m adainrt.benchmarks.flicker [--model DIR] [--frames 100]

The clip is a static camera: one synthetic scene, mild sensor noise, and a light that blinks
at random. Flicker is the mean absolute difference between consecutive output frames (0..255).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from adainrt.images import bundled_sample, load_image, resize_smaller_side


def make_clip(path: Path, frames: int, fps: int = 10, size: tuple[int, int] = (192, 128), seed: int = 0) -> None:
    import imageio_ffmpeg

    rng = np.random.default_rng(seed)
    scene = np.asarray(load_image(bundled_sample("coffee")).resize(size, Image.Resampling.BICUBIC), np.float32)
    writer = imageio_ffmpeg.write_frames(str(path), size, fps=fps, macro_block_size=1, quality=9,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for _ in range(frames):
        frame = scene + rng.normal(0, 2, scene.shape)
        if rng.random() < 0.5:
            frame[16:48, 120:168] = (255, 250, 200)
        writer.send(np.clip(frame, 0, 255).astype(np.uint8).tobytes())
    writer.close()


def main() -> None:
    from adainrt.export.cache import cached_model_dir
    from adainrt.runtime.jobs import open_stylizer
    from adainrt.runtime.video import stylize_video

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="graphs folder (default: bundled weights, cached export)")
    parser.add_argument("--frames", type=int, default=100)
    args = parser.parse_args()
    stylizer = open_stylizer(args.model, graphs=cached_model_dir)
    style = stylizer.style_stats(resize_smaller_side(load_image(bundled_sample("strokes")), 256))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, args.frames)
        print(f"{'smoothing':>9}  flicker (mean |frame_t - frame_t-1|, 0..255)")
        for momentum in (0.0, 0.5, 0.8, 0.9):
            result = stylize_video(stylizer, clip, Path(tmp) / f"out_{momentum}.mp4", style, content_size=0,
                                   smoothing=momentum)
            print(f"{momentum:>9}  {result.flicker:.3f}")


if __name__ == "__main__":
    main()
