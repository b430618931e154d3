"""Special files and damaged state (issue 29): concurrent exports, FIFOs and devices as outputs,
manifests, the style bank, video, GIFs, Ray reports, outputs that are not files. Each case gives the
right result or one clear line, never a traceback or a hang."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.contract import FORMS, read_manifest, verified_graphs
from adainrt.errors import ModelError, OutputExists, OutputUnwritable
from adainrt.images import load_image, save_image
from adainrt.runtime import StyleStats
from adainrt.runtime.jobs import plan_outputs
from adainrt.runtime.style_bank import StyleBank, StyleBankError
from tests.helpers import read_only_run, synthetic_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, *expected: str) -> str:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: "), result.output
    for part in expected:
        assert part in last, last
    return last


def copy_graphs(exported_dir: Path, folder: Path) -> dict:
    """A copy of the exported graphs; returns its manifest to edit."""
    shutil.copytree(exported_dir, folder)
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture()
def style(tmp_path):
    path = tmp_path / "style.png"
    synthetic_image(48, 48, seed=7).save(path)
    return path


# ------------------------------------------------------------------ 1. two exports into one folder


def test_two_exports_into_one_folder_at_once_one_is_refused_and_the_graphs_are_one_export(tmp_path, model,
                                                                                          encoder_meta):
    import torch

    from adainrt.export import export_model
    from adainrt.network import AdaINModel, build_decoder

    torch_model, prov = model
    torch.manual_seed(99)
    other = AdaINModel(torch_model.encoder, build_decoder()).eval()
    other_prov = {**prov, "decoder_hash": "other-decoder"}
    folder, barrier, outcomes = tmp_path / "models", threading.Barrier(2), {}

    def export(name: str, net, provenance) -> None:
        barrier.wait()
        try:
            export_model(net, folder, "full", provenance, verify_sizes=((64, 64),))
            outcomes[name] = "ok"
        except OutputExists as exc:
            outcomes[name] = str(exc)

    threads = [threading.Thread(target=export, args=a) for a in (("a", torch_model, prov), ("b", other, other_prov))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()).count("ok") == 1, outcomes
    refused = next(v for v in outcomes.values() if v != "ok")
    assert "adain_full.onnx already exists" in refused
    winner = prov if outcomes["a"] == "ok" else other_prov
    manifest = read_manifest(folder)
    assert manifest["decoder_hash"] == winner["decoder_hash"]
    verified_graphs(folder, ("full",), "fp32")  # the graph on disk is the one the manifest records
    # Sequentially too: adding graphs of other weights to the folder would drop the first's from its manifest.
    loser_net, loser_prov = (other, other_prov) if outcomes["a"] == "ok" else (torch_model, prov)
    with pytest.raises(OutputExists, match="graphs of other weights in .*adain_full.onnx.* already exist"):
        export_model(loser_net, folder, "split", loser_prov, verify_sizes=((64, 64),))
    assert not (folder / "adain_encoder.onnx").exists()


# ------------------------------------------------------------------ 3. outputs that are not regular files


def test_an_output_that_is_a_fifo_is_not_replaced_even_with_overwrite(tmp_path, style):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    with pytest.raises(OutputUnwritable, match="out.png is a named pipe .FIFO., not a regular file"):
        plan_outputs(style, fifo, [str(style)], overwrite=True)
    with pytest.raises(OutputUnwritable, match="not a regular file"):
        save_image(synthetic_image(40, 40), fifo, overwrite=True)
    assert fifo.is_fifo()
    result = run("stylize", style, "-s", style, "-o", fifo, "--overwrite", "--model", tmp_path / "none")
    one_line_error(result, "named pipe", "not a regular file", "write to a regular file")
    assert fifo.is_fifo()


def test_a_device_as_output_is_refused_before_any_work(tmp_path, style):
    result = run("stylize", style, "-s", style, "-o", "/dev/null", "--overwrite", "--model", tmp_path / "none")
    one_line_error(result, "/dev/null is a device, not a regular file")
    assert Path("/dev/null").is_char_device()


# ------------------------------------------------------------------ 4. a video whose frame size changes


def _ffmpeg() -> str:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="video needs imageio-ffmpeg")
    return imageio_ffmpeg.get_ffmpeg_exe()


def test_a_video_whose_frame_size_changes_mid_stream_is_refused_naming_both_sizes(tmp_path, style, exported_dir):
    ffmpeg = _ffmpeg()
    for name, size in (("a", "64x64"), ("b", "96x48")):
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate=10", "-frames:v",
                        "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts", str(tmp_path / f"{name}.ts")],
                       check=True)
    (tmp_path / "both.ts").write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg, "-v", "error", "-i", str(tmp_path / "both.ts"), "-c", "copy", str(clip)], check=True)
    out = tmp_path / "out.mp4"
    result = run("stylize", clip, "-s", style, "-o", out, "--model", exported_dir, "--backend", "ort-cpu")
    one_line_error(result, "frame size changes mid-stream (64x64 to 96x48 at 1 s)", "cut it")
    assert not out.exists()
    from adainrt.runtime.video import probe

    assert probe(tmp_path / "a.ts").frames == 10  # one size: read as before


# ------------------------------------------------------------------ 5. animated GIFs


def test_an_animated_gif_is_refused_not_reduced_to_its_first_frame(tmp_path, style, exported_dir):
    frames = [synthetic_image(48, 48, seed=k) for k in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    out = tmp_path / "out.png"
    result = run("stylize", gif, "-s", style, "-o", out, "--model", exported_dir, "--backend", "ort-cpu")
    one_line_error(result, "anim.gif: an animated or multi-page GIF of 3 frames", "ffmpeg -i anim.gif anim.mp4")
    assert not out.exists()
    frames[0].save(tmp_path / "still.gif")
    assert load_image(tmp_path / "still.gif").size == (48, 48)  # one frame: an image as any other


# ------------------------------------------------------------------ 6, 7, 11. the style bank


def _stats(mean: float = 0.5, std: float = 1.0) -> StyleStats:
    return StyleStats(np.full((1, 512, 1, 1), mean, np.float32), np.full((1, 512, 1, 1), std, np.float32))


def test_a_stored_style_with_absurd_finite_statistics_is_refused(tmp_path):
    bank = StyleBank(tmp_path)
    huge = np.full((1, 512, 1, 1), 3e38, np.float32)
    np.savez(tmp_path / "huge.npz", mean=np.zeros_like(huge), std=huge, record=np.array("{}"))
    with pytest.raises(StyleBankError, match=r"'huge'.*broken \(stds reach 3e\+38, beyond what an encoder gives"):
        bank.get("huge")
    np.savez(tmp_path / "negative.npz", mean=-np.ones_like(huge), std=np.ones_like(huge), record=np.array("{}"))
    with pytest.raises(StyleBankError, match="means hold negative values"):
        bank.get("negative")
    with pytest.raises(ValueError, match="beyond what an encoder gives"):
        bank.add("huge2", _stats(std=1e6), {})
    bank.add("plausible", _stats(mean=80.0, std=300.0), {})  # an unnormalized VGG's range stays storable
    assert float(bank.get("plausible").stats.std.max()) == pytest.approx(300.0)


def test_style_list_shows_the_file_name_that_style_takes(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path))
    StyleBank(tmp_path).add("mine", _stats(), {"source": "test"})
    (tmp_path / "mine.npz").rename(tmp_path / "copied.npz")  # its record still says "mine"
    listing = run("style", "list")
    assert listing.exit_code == 0 and listing.output.split()[0] == "copied", listing.output
    assert json.loads(run("style", "list", "--json").output)[0]["name"] == "copied"
    assert StyleBank(tmp_path).get("copied").info["name"] == "copied"


def test_a_bank_entry_without_a_name_and_a_fifo_in_the_bank_do_not_end_style_list(tmp_path):
    bank = StyleBank(tmp_path)
    bank.add("fine", _stats(), {})
    np.savez(tmp_path / "nameless.npz", mean=_stats().mean, std=_stats().std, record=np.array('{"source": "x"}'))
    os.mkfifo(tmp_path / "pipe.npz")
    listing = subprocess.run([sys.executable, "-m", "adainrt.cli", "style", "list"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "ADAINRT_STYLES": str(tmp_path)})
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert set(lines) == {"fine", "nameless", "pipe"}
    assert "BROKEN" in lines["pipe"] and "not a regular file" in lines["pipe"]
    assert "BROKEN" not in lines["nameless"]
    with pytest.raises(StyleBankError, match="'pipe'.*not a regular file"):
        bank.get("pipe")


# ------------------------------------------------------------------ 8, 9. folder jobs and Ray workers


def test_dangling_and_looping_links_named_like_images_are_reported_not_skipped(tmp_path, style, exported_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    synthetic_image(48, 56, seed=1).save(folder / "a.png")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (folder / "loop.png").symlink_to(folder / "loop.png")
    out = tmp_path / "out"
    result = run("stylize", folder, "-s", style, "-o", out, "--model", exported_dir, "--backend", "ort-cpu")
    one_line_error(result, "2 of 3 inputs could not be stylized")
    assert f"gone.png: a link to {tmp_path / 'nowhere.png'}, which does not exist" in result.output
    assert "loop.png: a link that loops" in result.output
    assert [p.name for p in out.iterdir()] == ["a_stylized_style.png"]
    # A Ray job plans with the same inputs, and its workers report as the local job does.
    plan = plan_outputs(folder, out, [str(style)], skip_existing=True)
    assert sorted(src.name for src, _ in plan.pairs) == ["gone.png", "loop.png"]


def test_a_ray_batch_retried_after_its_worker_died_reports_outputs_already_written(tmp_path, style, exported_dir):
    """A worker killed after writing part of its batch: Ray reruns the batch elsewhere, which must count the
    outputs written (whole: atomic) as done, not as failures because they exist."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'adainrt[serve]')")
    from adainrt.runtime.jobs import StylizeOptions
    from adainrt.runtime.ray_jobs import StylizeWorker

    sources = []
    for k in range(2):
        synthetic_image(48, 56, seed=k).save(tmp_path / f"p{k}.png")
        sources.append(str(tmp_path / f"p{k}.png"))
    outputs = [str(tmp_path / "out" / f"p{k}_stylized.png") for k in range(2)]
    worker = StylizeWorker(str(exported_dir), "ort-cpu", None, ([load_image(style)], []), StylizeOptions())
    worker({"src": np.array(sources[:1], dtype=object), "dst": np.array(outputs[:1], dtype=object)})  # the dead one
    written = Path(outputs[0]).read_bytes()
    retried = worker({"src": np.array(sources, dtype=object), "dst": np.array(outputs, dtype=object)})
    assert list(retried["error"]) == ["", ""]
    assert Path(outputs[0]).read_bytes() == written and Path(outputs[1]).is_file()


# ------------------------------------------------------------------ 10. malformed manifests


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda m, text: "[" * 10_000 + "]" * 10_000, "nested too deeply"),
    (lambda m, text: json.dumps({**m, "format_version": "1"}), "\"format_version\" is '1', not a number"),
    (lambda m, text: json.dumps({**m, "graphs": {**m["graphs"], "adain_decoder.onnx": ["a", "list"]}}),
     "the entry of graph 'adain_decoder.onnx' is a list, not an object"),
    (lambda m, text: json.dumps({**m, "graphs": {"../models/adain_decoder.onnx": {}, **m["graphs"]}}),
     "graph '../models/adain_decoder.onnx' is not a file name inside the folder"),
    (lambda m, text: " " * (2 << 20), "too large for a manifest"),
], ids=["nested", "version-string", "entry-list", "path-name", "huge"])
def test_a_malformed_manifest_is_one_line_not_a_traceback(tmp_path, style, exported_dir, edit, expected):
    folder = tmp_path / "models"
    manifest = copy_graphs(exported_dir, folder)
    (folder / "manifest.json").write_text(edit(manifest, (folder / "manifest.json").read_text()))
    with pytest.raises(ModelError, match="manifest.json: "):
        verified_graphs(folder, FORMS["split"], "fp32")
    result = run("stylize", style, "-s", style, "-o", tmp_path / "out.png", "--model", folder, "--backend", "ort-cpu")
    one_line_error(result, expected, "export the folder again")


# ------------------------------------------------------------------ 12. a read-only cache


def test_a_read_only_cache_runs_openvino_without_its_compile_cache_and_says_so_once(tmp_path, style, exported_dir,
                                                                                    monkeypatch):
    pytest.importorskip("openvino", reason="openvino is not installed")
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "ro" / "cache"))
    out = tmp_path / "out.png"
    result = read_only_run(tmp_path, "stylize", str(style), "-s", str(style), "-o", str(out), "--model",
                            str(exported_dir), "--backend", "openvino", "--precision", "fp32", "--content-size", "0")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("OpenVINO runs without its compile cache") == 1, result.stderr
    assert "read-only" in result.stderr and Image.open(out).size == (48, 48)
