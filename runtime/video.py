"""Video stylization through imageio-ffmpeg (its bundled ffmpeg): frames streamed in and out.

Memory stays flat however long the video: one frame is decoded, stylized and encoded at a
time. The output keeps the source frame rate, and its audio where the source has any.
AdaIN flickers on video because each frame's content statistics differ a little; the
optional temporal smoothing replaces them by an exponential moving average.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adainrt.errors import AdainrtError
from adainrt.fileio import atomic_path
from adainrt.runtime.controls import StyleStats
from adainrt.runtime.stylizer import ContentSmoother, Stylizer, check_alpha

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


def _ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise AdainrtError("video needs imageio-ffmpeg: pip install 'adainrt[video]'") from exc
    return imageio_ffmpeg


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int
    has_audio: bool


def ffmpeg_reason(exc: BaseException) -> str:
    """ffmpeg's cause, its last line: imageio-ffmpeg's message carries ffmpeg's whole banner before it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.strip().startswith("===")]
    return lines[-1] if lines else type(exc).__name__


def probe(path: str | os.PathLike) -> VideoInfo:
    ffmpeg = _ffmpeg()
    try:
        reader = ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
        frames, _ = ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError, StopIteration) as exc:
        raise AdainrtError(f"{path}: not a readable video ({ffmpeg_reason(exc)})") from exc
    width, height = meta["size"]
    check_one_frame_size(path)
    return VideoInfo(width, height, float(meta["fps"]), int(frames), "audio_codec" in meta)


def check_one_frame_size(path: str | os.PathLike) -> None:
    """Refuse a video whose frame size changes mid-stream: ffmpeg scales every frame to the first
    one's size, so the later part would come out squashed without a word. A size changes only at a
    keyframe, so only keyframes are decoded (seconds for an hour of video)."""
    command = [_ffmpeg().get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-skip_frame", "nokey", "-i", str(path),
               "-map", "0:v:0", "-an", "-sn", "-vf", "showinfo=checksum=0", "-f", "null", "-"]
    try:
        log = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=3600).stderr
    except (OSError, subprocess.TimeoutExpired):
        return  # no verdict: the frames still come at the first size, as before
    sizes = [(m.group(2), float(m.group(1))) for m in _SHOWINFO.finditer(log)]
    changes = [(size, at) for (size, at), (before, _) in zip(sizes[1:], sizes, strict=False) if size != before]
    if changes:
        more = f" and {len(changes) - 1} more change(s)" if len(changes) > 1 else ""
        raise AdainrtError(f"{path}: its frame size changes mid-stream ({sizes[0][0]} to {changes[0][0]} at "
                           f"{changes[0][1]:g} s{more}); one output video has one size, so the later frames would be "
                           "squashed: cut it where the size changes and stylize each part")


#: showinfo's line per frame: its time and its size.
_SHOWINFO = re.compile(r"pts_time:\s*(-?[\d.]+).*? s:(\d+x\d+) ")


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H, W, 3), one at a time."""
    ffmpeg = _ffmpeg()
    reader = ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    for raw in reader:
        yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)


def even_size(width: int, height: int, content_size: int) -> tuple[int, int]:
    """Output frame size: smaller side ``content_size`` (0 keeps), both sides even (yuv420p)."""
    if content_size:
        scale = content_size / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return width - width % 2, height - height % 2


def stylize_frame(stylizer: Stylizer, frame: np.ndarray, style: StyleStats, alpha: float,
                  smoother: ContentSmoother | None) -> np.ndarray:
    """One RGB uint8 frame -> stylized RGB uint8 frame of the same size (the Stylizer's one pipeline)."""
    return stylizer.stylize(frame, style, alpha, smoother=smoother)


@dataclass
class VideoResult:
    path: Path
    frames: int
    fps: float
    size: tuple[int, int]
    audio: bool
    flicker: float  # mean |frame_t - frame_{t-1}| of the output, in 0..255 units


def stylize_video(
    stylizer: Stylizer,
    source: str | os.PathLike,
    output: str | os.PathLike,
    style: StyleStats,
    alpha: float = 1.0,
    content_size: int = 512,
    smoothing: float = 0.0,
    overwrite: bool = False,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> VideoResult:
    """Stylize a video file frame by frame into ``output`` (written atomically)."""
    check_alpha(alpha)
    info = probe(source)
    size = even_size(info.width, info.height, content_size)
    smoother = ContentSmoother(smoothing) if smoothing else None
    styled = (stylize_frame(stylizer, frame, style, alpha, smoother) for frame in sized_frames(source, size))
    return write_video(source, output, info, size, styled, overwrite, progress)


def sized_frames(source: str | os.PathLike, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The source's RGB uint8 frames at ``size`` (width, height), one at a time."""
    width, height = size
    for frame in read_frames(source):
        if frame.shape[:2] != (height, width):
            frame = np.asarray(Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC))
        yield frame


def write_video(
    source: str | os.PathLike,
    output: str | os.PathLike,
    info: VideoInfo,
    size: tuple[int, int],
    frames: Iterable[np.ndarray],
    overwrite: bool = False,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> VideoResult:
    """Encode stylized ``frames`` (RGB uint8 at ``size``) into ``output`` atomically, at the source's
    frame rate and with its audio; measures the flicker on the way."""
    ffmpeg = _ffmpeg()
    output = Path(output)
    width, height = size
    count, flicker_sum, previous = 0, 0.0, None
    with atomic_path(output, overwrite=overwrite) as tmp:
        tmp_video = tmp.with_suffix(output.suffix)  # ffmpeg picks the container from the suffix
        writer = ffmpeg.write_frames(
            str(tmp_video), (width, height), fps=info.fps, codec="libx264", quality=8, macro_block_size=1,
            audio_path=str(source) if info.has_audio else None, audio_codec="aac" if info.has_audio else None,
            ffmpeg_log_level="error",
        )
        try:
            writer.send(None)
            try:
                for styled in frames:
                    if previous is not None:
                        flicker_sum += float(np.abs(styled.astype(np.int16) - previous).mean())
                    previous = styled.astype(np.int16)
                    writer.send(np.ascontiguousarray(styled).tobytes())
                    count += 1
                    progress(count, info.frames)
            finally:
                writer.close()
            os.replace(tmp_video, tmp)
        finally:
            tmp_video.unlink(missing_ok=True)  # an interrupted run leaves no playable partial video behind
    return VideoResult(output, count, info.fps, (width, height), info.has_audio,
                       flicker_sum / max(count - 1, 1))
