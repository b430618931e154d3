"""`adainrt stylize FOLDER --ray`: a real local Ray with two workers (Ray Data), resumable."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.helpers import psnr, synthetic_image

pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'adainrt[serve]')")
pytestmark = pytest.mark.slow


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "adainrt.cli", "stylize", *args], capture_output=True, text=True,
                          timeout=600)


def test_a_folder_on_two_ray_workers_equals_the_local_run_and_a_rerun_resumes(exported_dir, tmp_path):
    from adainrt.runtime import Stylizer

    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    contents = {f"p{k}": synthetic_image(56 + 8 * (k % 2), 72, seed=100 + k) for k in range(6)}
    for name, image in contents.items():
        image.save(folder / f"{name}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    style = tmp_path / "paint.png"
    synthetic_image(64, 64, seed=120).save(style)
    args = [str(folder), "-s", str(style), "-o", str(out), "--model", str(exported_dir), "--backend", "ort-cpu",
            "--alpha", "0.8", "--content-size", "0", "--style-size", "0", "--ray", "--workers", "2"]

    first = run_cli(*args)
    assert first.returncode == 1 and "1 of 7 inputs could not be stylized" in first.stderr, first.stderr
    assert "broken.png" in first.stderr
    written = {p.name: p for p in out.glob("*.png")}
    assert sorted(written) == [f"{name}_stylized_paint.png" for name in sorted(contents)]
    with Stylizer(exported_dir, backend="ort-cpu") as stylizer:
        stats = stylizer.style_stats(Image.open(style).convert("RGB"))
        for name, image in contents.items():
            expected = np.asarray(stylizer.stylize(image, stats, 0.8), np.int16)
            got = np.asarray(Image.open(written[f"{name}_stylized_paint.png"]).convert("RGB"), np.int16)
            assert got.shape == expected.shape and np.abs(got - expected).max() <= 2, name

    crowded = run_cli(*args[:-1], str(os.cpu_count() + 1))  # more workers than a local Ray can hold: refused
    assert crowded.returncode == 1 and "use fewer workers" in crowded.stderr, crowded.stderr

    kept = {name: path.stat().st_mtime_ns for name, path in written.items()}
    for name in ("p1_stylized_paint.png", "p4_stylized_paint.png"):
        written[name].unlink()
    (folder / "broken.png").unlink()
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert "4 output(s) already written, left alone; 2 to do" in second.stderr
    assert "wrote 2 images" in second.stdout
    for name, mtime in kept.items():
        assert written[name].is_file()
        if name not in ("p1_stylized_paint.png", "p4_stylized_paint.png"):
            assert written[name].stat().st_mtime_ns == mtime, name  # left alone


def test_a_video_on_two_ray_workers_keeps_order_frames_and_audio(exported_dir, tmp_path):
    """Frames go out in chunks to two workers and come back in order: the output equals the local run's."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="video needs imageio-ffmpeg (adainrt[video])")
    from adainrt.runtime.video import probe, read_frames

    clip, style = tmp_path / "clip.mp4", tmp_path / "paint.png"
    synthetic_image(64, 64, seed=121).save(style)
    writer = imageio_ffmpeg.write_frames(str(clip), (80, 48), fps=12, macro_block_size=1, quality=9,
                                         ffmpeg_log_level="error")
    writer.send(None)
    for k in range(30):  # a moving scene: a frame out of order would show
        writer.send(np.asarray(synthetic_image(48, 80, seed=200 + k), np.uint8).tobytes())
    writer.close()
    common = [str(clip), "-s", str(style), "--model", str(exported_dir), "--backend", "ort-cpu",
              "--content-size", "0", "--style-size", "0", "--alpha", "0.9"]
    spread = run_cli(*common, "-o", str(tmp_path / "ray.mp4"), "--ray", "--workers", "2")
    assert spread.returncode == 0, spread.stderr
    local = run_cli(*common, "-o", str(tmp_path / "local.mp4"))
    assert local.returncode == 0, local.stderr
    assert probe(tmp_path / "ray.mp4").frames == probe(clip).frames == 30
    for k, (a, b) in enumerate(zip(read_frames(tmp_path / "ray.mp4"), read_frames(tmp_path / "local.mp4"),
                                   strict=True)):
        assert psnr(a, b) >= 40.0, k
    refused = run_cli(*common, "-o", str(tmp_path / "smooth.mp4"), "--ray", "--temporal-smoothing", "0.8")
    assert refused.returncode == 1 and "runs on one machine" in refused.stderr


