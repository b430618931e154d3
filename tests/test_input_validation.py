"""Input validation (issue 19): bad numbers, weights, paths, images, graphs and style names; each case
gets a clear error or a correct result, never a silent wrong output, a traceback, a mixed folder or
litter."""

import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.errors import ImageError, ModelError, OutputExists
from adainrt.fileio import atomic_path, atomic_write_bytes
from adainrt.images import center_crop, load_image, resize_smaller_side
from adainrt.runtime import StyleStats, Stylizer
from adainrt.runtime.controls import ControlError, normalize_weights
from adainrt.runtime.style_bank import StyleBank, StyleBankError
from tests.helpers import ORT_CPU, synthetic_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def files(tmp_path, images_dir):
    style = tmp_path / "style.png"
    synthetic_image(48, 48, seed=7).save(style)
    return tmp_path, images_dir / "content_a.png", style


def one_line_error(result) -> bool:
    """Exit 1 with the error as the last line, and no traceback anywhere (progress lines may come first)."""
    last = result.output.strip().splitlines()[-1] if result.output.strip() else ""
    return result.exit_code == 1 and last.startswith("Error: ") and "Traceback" not in result.output


# ------------------------------------------------------------------ silent wrong, lost or mixed output


def test_outputs_that_would_collide_are_refused_naming_both_inputs(files, exported_dir):
    tmp_path, content, style = files
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(content, folder / "a.png")
    synthetic_image(40, 40).save(folder / "a.jpg")
    result = run("stylize", folder, "-s", style, "-o", tmp_path / "out", "--model", exported_dir, "--overwrite")
    assert one_line_error(result) and "a.jpg" in result.output and "a.png" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("weights", ["nan,1", "inf,1", "-1,2", "0,0"])
def test_style_weights_must_be_finite_and_positive(files, exported_dir, weights):
    tmp_path, content, style = files
    result = run("stylize", content, "-s", style, "-s", style, "--style-weights", weights, "-o", tmp_path / "o.png",
                 "--model", exported_dir)
    assert one_line_error(result) and "style weights must be finite" in result.output
    assert not (tmp_path / "o.png").exists()


def test_huge_style_weights_do_not_overflow():
    assert normalize_weights([1e308, 1e308], 2) == pytest.approx([0.5, 0.5])
    assert normalize_weights([1e308, 1e300], 2)[0] == pytest.approx(1.0)
    with pytest.raises(ControlError):
        normalize_weights([float("nan"), 1.0], 2)


def test_16_bit_images_keep_their_range(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    flat = np.full((64, 64), 30000, np.uint16)
    Image.fromarray(flat).save(tmp_path / "flat16.png")
    loaded = np.asarray(load_image(tmp_path / "ramp16.png"))
    assert len(np.unique(loaded)) > 200 and loaded.min() == 0 and loaded.max() == 255
    assert np.asarray(load_image(tmp_path / "flat16.png"))[0, 0, 0] == round(30000 / 65535 * 255)


def test_a_stored_style_with_nan_is_refused(tmp_path):
    bank = StyleBank(tmp_path)
    stats = StyleStats(np.zeros((1, 512, 1, 1), np.float32), np.ones((1, 512, 1, 1), np.float32))
    bank.add("good", stats, {})
    bad = np.zeros((1, 512, 1, 1), np.float32)
    bad[0, 3] = np.nan
    np.savez(tmp_path / "nan.npz", mean=bad, std=np.ones((1, 512, 1, 1), np.float32), record=np.array("{}"))
    with pytest.raises(StyleBankError, match="'nan'.*broken.*NaN.*adainrt style remove nan"):
        bank.get("nan")
    with pytest.raises(ValueError, match="NaN"):
        bank.add("nan2", StyleStats(bad, bad), {})


def tampered_copy(exported_dir, tmp_path, name: str, edit) -> object:
    """A copy of the exported graphs with ``edit(proto)`` applied to one graph and its manifest entry
    updated to match: what a hand-made folder could look like."""
    import onnx

    from adainrt.fileio import sha256_file

    folder = tmp_path / "graphs"
    shutil.copytree(exported_dir, folder)
    proto = onnx.load(str(folder / name))
    edit(proto)
    onnx.save(proto, str(folder / name))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["graphs"][name]["sha256"] = sha256_file(folder / name)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_graph_without_adainrt_metadata_is_refused_even_with_a_matching_manifest(exported_dir, tmp_path):
    folder = tampered_copy(exported_dir, tmp_path, "adain_decoder.onnx", lambda proto: proto.metadata_props.clear())
    with pytest.raises(ModelError, match="adain_decoder.onnx: its metadata says .*export the folder again"):
        Stylizer(folder, backend="ort-cpu")


def test_two_writers_of_one_style_name_one_wins_whole(tmp_path):
    bank = StyleBank(tmp_path)
    for round_ in range(10):
        barrier, outcomes = threading.Barrier(2), []

        def add(value: float, name: str = f"s{round_}", barrier=barrier, outcomes=outcomes) -> None:
            stats = StyleStats(np.full((1, 512, 1, 1), value, np.float32), np.full((1, 512, 1, 1), value, np.float32))
            barrier.wait()
            try:
                bank.add(name, stats, {"value": value})
                outcomes.append(value)
            except OutputExists:
                outcomes.append(None)

        threads = [threading.Thread(target=add, args=(v,)) for v in (1.0, 2.0)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [o for o in outcomes if o is not None]
        assert len(winners) == 1, outcomes
        stored = bank.get(f"s{round_}")
        assert stored.info["value"] == winners[0] and float(stored.stats.mean[0, 0, 0, 0]) == winners[0]


def test_a_png_whose_pixel_data_stops_short_is_an_error(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width = height = 900
    rows = b"".join(b"\x00" + bytes([200, 10, 10]) * width for _ in range(10))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    (tmp_path / "short.png").write_bytes(png)
    with pytest.raises(ImageError, match="truncated PNG: its header says 900x900"):
        load_image(tmp_path / "short.png")
    synthetic_image(50, 60).save(tmp_path / "whole.png")
    assert load_image(tmp_path / "whole.png").size == (60, 50)


# ------------------------------------------------------------------ tracebacks instead of clear errors


def test_corrupt_style_bank_entries_are_named_and_the_rest_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path))
    bank = StyleBank(tmp_path)
    bank.add("fine", StyleStats(np.zeros((1, 512, 1, 1), np.float32), np.ones((1, 512, 1, 1), np.float32)), {})
    (tmp_path / "random.npz").write_bytes(os.urandom(300))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "fine.npz").read_bytes()[:200])
    np.savez(tmp_path / "shape.npz", mean=np.zeros(3, np.float32), std=np.ones(3, np.float32), record=np.array("{}"))
    for name in ("random", "cut", "shape"):
        with pytest.raises(StyleBankError, match=f"stored style '{name}'.*broken.*adainrt style remove {name}"):
            bank.get(name)
    listing = run("style", "list")
    assert listing.exit_code == 0 and "fine" in listing.output
    assert listing.output.count("BROKEN") == 3
    assert run("style", "remove", "random").exit_code == 0


def test_bad_numbers_and_paths_are_one_line_errors(files, exported_dir):
    tmp_path, content, style = files
    common = ["-s", style, "--model", exported_dir]
    result = run("stylize", content, *common, "-o", tmp_path / "o.png", "--max-pixels", "-1")
    assert one_line_error(result) and "pixel limit must be a positive number" in result.output
    assert one_line_error(run("bench", "--size", "0", "--model", exported_dir))
    (tmp_path / "plain").write_text("a file")
    result = run("stylize", content, *common, "-o", tmp_path / "plain" / "sub" / "o.png")
    assert one_line_error(result) and "is a file, not a folder" in result.output
    images = tmp_path / "imgs"
    images.mkdir()
    shutil.copy(content, images / "c.png")
    result = run("stylize", images, *common, "-o", tmp_path / "plain")
    assert one_line_error(result) and "plain is a file, not a folder" in result.output


def test_a_style_graph_with_one_output_is_refused(exported_dir, tmp_path):
    folder = tampered_copy(exported_dir, tmp_path, "adain_style.onnx", lambda proto: proto.graph.output.pop())
    with pytest.raises(ModelError, match="adain_style.onnx: takes .* and gives \\['style_mean'\\]"):
        Stylizer(folder, backend="ort-cpu")


# ------------------------------------------------------------------ litter


def test_stale_temporaries_of_dead_runs_are_removed_and_live_ones_kept(tmp_path):
    from adainrt.fileio import _HOST

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.png.{_HOST}-{dead_pid}.x1y2.tmp"
    stale_video = tmp_path / f".out.png.{_HOST}-{dead_pid}.x1y2.mp4"
    live = tmp_path / f".out.png.{_HOST}-{os.getpid()}.a1b2.tmp"
    foreign = tmp_path / ".out.png.notours"
    other_host_young = tmp_path / f".out.png.otherhost-{dead_pid}.y0u9.tmp"
    other_host_old = tmp_path / f".out.png.otherhost-{dead_pid}.o1d0.tmp"
    for path in (stale, stale_video, live, foreign, other_host_young, other_host_old):
        path.write_text("left over")
    os.utime(other_host_old, (1e9, 1e9))  # untouched for years
    atomic_write_bytes(tmp_path / "out.png", b"new")
    assert other_host_young.exists() and not other_host_old.exists()  # another host's writer may still run
    assert not stale.exists() and not stale_video.exists() and live.exists() and foreign.exists()
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".b.")) == []


# ------------------------------------------------------------------ smaller


@pytest.mark.parametrize("name", ["foo\n", "foo.jpg", "a b", "-x", ""])
def test_style_names_have_one_unambiguous_form(tmp_path, name):
    with pytest.raises(StyleBankError, match="style name"):
        StyleBank(tmp_path).path(name)


def test_resizing_past_the_pixel_limit_is_refused(tmp_path):
    with pytest.raises(ImageError, match="above the limit"):
        resize_smaller_side(synthetic_image(96, 96), 12000)


def test_temporal_smoothing_on_an_image_says_it_is_for_video(files, exported_dir):
    tmp_path, content, style = files
    result = run("stylize", *ORT_CPU, content, "-s", style, "-o", tmp_path / "o.png", "--model", exported_dir,
                 "--temporal-smoothing", "0.8")
    assert one_line_error(result) and "video only" in result.output


def test_import_weights_never_suggests_unsafe_loading(tmp_path):
    (tmp_path / "junk.pth").write_bytes(os.urandom(2000))
    result = run("import-weights", tmp_path / "junk.pth", "-o", tmp_path / "w.safetensors")
    assert one_line_error(result) and "weights_only" not in result.output and "can read safely" in result.output


def test_bare_preserve_color_flag_means_color(files, exported_dir):
    tmp_path, content, style = files
    bare = run("stylize", content, "-s", style, "--model", exported_dir, "--backend", "ort-cpu", "--preserve-color",
               "-o", tmp_path / "bare.png")
    named = run("stylize", content, "-s", style, "--model", exported_dir, "--backend", "ort-cpu", "--preserve-color",
                "color", "-o", tmp_path / "named.png")
    assert bare.exit_code == 0 and named.exit_code == 0, bare.output + named.output
    bare_image, named_image = (np.asarray(Image.open(tmp_path / f"{n}.png"), np.int16) for n in ("bare", "named"))
    assert np.abs(bare_image - named_image).max() <= 1


def test_resize_and_crop_follow_the_reference_formulas():
    """torchvision's Resize(256): the long side truncated (519x333 -> 398x256); CenterCrop rounds."""
    assert resize_smaller_side(Image.new("RGB", (519, 333)), 256).size == (398, 256)
    assert resize_smaller_side(Image.new("RGB", (333, 519)), 256).size == (256, 398)
    image = Image.new("RGB", (101, 64))
    for size in (32, 33, 63):
        assert center_crop(image, size).size == (size, size)
    numbers = np.arange(101)[None, :, None].repeat(64, 0).repeat(3, 2).astype(np.uint8)
    cropped = np.asarray(center_crop(Image.fromarray(numbers), 64))
    assert cropped[0, 0, 0] == int(round((101 - 64) / 2.0))


@pytest.mark.slow
def test_a_damaged_graph_in_the_export_cache_is_rebuilt(tmp_path, monkeypatch, random_decoder):
    from adainrt.export.cache import cached_model_dir

    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    folder = cached_model_dir(None, random_decoder)
    (folder / "adain_decoder.onnx").write_bytes(b"damaged")
    assert cached_model_dir(None, random_decoder) == folder
    Stylizer(folder, backend="ort-cpu").close()  # verified against its manifest again

