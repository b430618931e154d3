"""User mistakes through the CLI and the Python API (read-only outputs, mixed folders, odd images,
masks, broken videos and stored styles): each gets a clear error naming the input and the fix, or
the result a user meant, before any long work."""

import zlib

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.contract import manifest_graphs
from adainrt.errors import ImageError, ModelError, OutputExists, OutputUnwritable
from adainrt.images import load_image, to_pil
from adainrt.runtime import StyleStats
from adainrt.runtime.controls import ControlError
from adainrt.runtime.jobs import StylizeOptions, plan_outputs, prepare_image, resolve_styles
from adainrt.runtime.style_bank import StyleBank, StyleBankError
from tests.helpers import ORT_CPU, read_only_run, synthetic_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result) -> bool:
    last = result.output.strip().splitlines()[-1] if result.output.strip() else ""
    return result.exit_code == 1 and last.startswith("Error: ") and "Traceback" not in result.output


@pytest.fixture()
def style(tmp_path):
    path = tmp_path / "style.png"
    synthetic_image(48, 48, seed=7).save(path)
    return path


# ------------------------------------------------------------------ where outputs go


def test_a_read_only_output_folder_is_refused_naming_it_not_a_temporary_file(tmp_path, style, exported_dir):
    result = read_only_run(tmp_path, "stylize", str(style), "-s", str(style), "-o", f"{tmp_path}/ro/out.png",
                            "--model", str(exported_dir))
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert f"{tmp_path}/ro" in error and "read-only" in error and ".tmp" not in error, error


def test_export_into_a_read_only_folder_is_refused_before_exporting(tmp_path):
    result = read_only_run(tmp_path, "export", "--output", f"{tmp_path}/ro/models")
    assert result.returncode == 1, result.stderr
    assert "read-only" in result.stderr and "exporting" not in result.stderr, result.stderr


def test_output_into_the_input_folder_does_not_restyle_earlier_results(tmp_path, style, exported_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    synthetic_image(64, 80, seed=1).save(folder / "a.png")
    synthetic_image(72, 64, seed=2).save(folder / "b.png")
    first = run("stylize", *ORT_CPU, folder, "-s", style, "-o", folder, "--model", exported_dir)
    assert first.exit_code == 0, first.output
    again = run("stylize", *ORT_CPU, folder, "-s", style, "-o", folder, "--model", exported_dir, "--skip-existing")
    assert again.exit_code == 0, again.output
    assert "left out 2 earlier result(s)" in again.output
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "a_stylized_style.png", "b.png",
                                                        "b_stylized_style.png"]


def test_several_existing_outputs_are_named_with_both_ways_out(tmp_path, style):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    for name in "abcde":
        synthetic_image(40, 40).save(folder / f"{name}.png")
        (out / f"{name}_stylized_style.png").write_bytes(b"x")
    with pytest.raises(OutputExists) as caught:
        plan_outputs(folder, out, [str(style)])
    message = str(caught.value)  # the first three named, the rest counted
    assert "c_stylized_style.png and 2 more already exist" in message and "exists" not in message
    assert "d_stylized_style" not in message
    assert "--overwrite" in caught.value.cli_hint and "--skip-existing" in caught.value.cli_hint


# ------------------------------------------------------------------ which model, which style


def test_weights_beside_a_model_folder_must_be_its_own(tmp_path, style, exported_dir, random_decoder):
    from adainrt.bundled import bundled_decoder_path

    other = run("stylize", *ORT_CPU, style, "-s", style, "-o", tmp_path / "o.png", "--model", exported_dir,
                "--decoder", bundled_decoder_path())
    assert one_line_error(other) and "is not the decoder the graphs in" in other.output and "not both" in other.output
    text = tmp_path / "decoder.safetensors"
    text.write_text("not weights")
    broken = run("stylize", style, "-s", style, "-o", tmp_path / "o.png", "--model", exported_dir, "--decoder", text)
    assert one_line_error(broken) and "decoder.safetensors: no adainrt weights metadata" in broken.output
    assert not (tmp_path / "o.png").exists()
    same = run("stylize", *ORT_CPU, style, "-s", style, "-o", tmp_path / "o.png", "--model", exported_dir,
               "--decoder", random_decoder)
    assert same.exit_code == 0, same.output


def test_a_folder_that_is_no_export_is_called_so(tmp_path, style):
    folder = tmp_path / "photos"
    folder.mkdir()
    result = run("stylize", *ORT_CPU, style, "-s", style, "-o", tmp_path / "o.png", "--model", folder)
    assert one_line_error(result) and "not a model folder" in result.output
    assert "--overwrite" not in result.output  # it does not suggest exporting over the user's folder


def test_a_folder_without_the_graphs_asked_names_itself_and_form_all():
    with pytest.raises(ModelError) as caught:
        manifest_graphs({"graphs": {"adain_full.onnx": {}}}, ("encoder", "style", "decoder"), "fp32", "models")
    message = str(caught.value)
    assert "models has no adain_encoder.onnx" in message and "--output models --form split" in message
    assert "--form all" in message and "adain_full.onnx" in message


def test_a_file_and_a_stored_style_of_one_name_are_not_silently_chosen(tmp_path, monkeypatch):
    bank = StyleBank(tmp_path / "bank")
    stats = StyleStats(np.zeros((1, 512, 1, 1), np.float32), np.ones((1, 512, 1, 1), np.float32))
    bank.add("starry", stats, {"source": "test"})
    monkeypatch.chdir(tmp_path)
    synthetic_image(48, 48).save(tmp_path / "starry", format="PNG")
    with pytest.raises(ControlError, match=r"both a file here and a stored style.*\./starry"):
        resolve_styles(["starry"], None, StylizeOptions(), bank)
    image, = resolve_styles(["./starry"], None, StylizeOptions(style_size=0), bank)
    assert image.size == (48, 48)
    (tmp_path / "starry").unlink()
    stored, = resolve_styles(["starry"], None, StylizeOptions(), bank)
    assert np.allclose(stored.std, 1.0)


def test_a_broken_stored_style_is_described_without_numpy_internals(tmp_path):
    bank = StyleBank(tmp_path)
    (tmp_path / "broken.npz").write_text("hello")
    with pytest.raises(StyleBankError) as caught:
        bank.get("broken")
    assert "pickle" not in str(caught.value) and "style remove broken" in str(caught.value)


def test_style_weight_and_mask_counts_are_checked_before_loading_anything(tmp_path, style):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    weights = run("stylize", style, "-s", style, "-s", style, "--style-weights", "1,2,3", "-o", tmp_path / "o.png",
                  "--model", empty)
    assert one_line_error(weights) and "3 style weights for 2 styles" in weights.output
    masks = run("stylize", style, "-s", style, "--mask", style, "--mask", style, "-o", tmp_path / "o.png",
                "--model", empty)
    assert one_line_error(masks) and "2 masks for 1 style:" in masks.output


# ------------------------------------------------------------------ what an image file holds


def test_a_text_file_named_jpg_is_called_no_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("shopping list")
    with pytest.raises(ImageError, match="not an image file") as caught:
        load_image(path)
    assert "complete" not in str(caught.value)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_a_huge_image_gets_our_limit_not_pillows_bomb_warning(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(20000, 10000))  # 200 MP: past Pillow's own guard (2 x 89 MP)
    with pytest.raises(ImageError, match=r"huge.png is 200 megapixels, above the limit of 100"):
        load_image(path)


def test_a_resize_past_the_limit_names_the_file(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("RGB", (20000, 32)).save(path)
    with pytest.raises(ImageError, match=r"strip.png: resizing 20000x32"):
        prepare_image(path, 512, crop=False)


def test_a_16_bit_image_reads_the_same_through_the_api_and_the_cli(tmp_path):
    ramp = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as opened:
        through_api = np.asarray(to_pil(opened), np.float32)
    through_cli = np.asarray(load_image(path), np.float32)
    assert np.abs(through_api - through_cli).max() <= 1.0
    assert 100 < through_api.mean() < 155  # a full ramp, not washed out to white


def test_transparent_pixels_show_white_not_their_hidden_colour(tmp_path):
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 0] = 255  # hidden red everywhere
    rgba[:, :24, 3] = 255  # the left half opaque red, the right half fully transparent
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    for image in (load_image(path), to_pil(rgba)):
        pixels = np.asarray(image)
        assert (pixels[:, :24] == [255, 0, 0]).all() and (pixels[:, 24:] == 255).all()


@pytest.mark.slow
def test_a_corrupt_video_is_one_line_not_ffmpegs_banner(tmp_path, style, exported_dir):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    result = run("stylize", *ORT_CPU, clip, "-s", style, "-o", tmp_path / "out.mp4", "--model", exported_dir)
    assert one_line_error(result) and "not a readable video" in result.output
    error = result.output.strip().splitlines()[-1]
    assert "ffmpeg version" not in error and len(error) < 400, error


def test_a_mask_drawn_on_a_transparent_sheet_is_the_shapes(tmp_path):
    from adainrt.runtime.controls import mask_array
    from adainrt.runtime.jobs import load_mask

    sheet = np.zeros((40, 40, 4), np.uint8)
    sheet[:20] = 255  # the top half opaque white, the bottom half (0, 0, 0, 0)
    path = tmp_path / "mask.png"
    Image.fromarray(sheet, "RGBA").save(path)
    for mask in (mask_array(load_mask(path)), mask_array(Image.fromarray(sheet, "RGBA"))):
        np.testing.assert_allclose(mask[:20], 1.0, atol=1e-6)
        np.testing.assert_allclose(mask[20:], 0.0, atol=1e-6)


def test_an_empty_list_of_masks_is_refused_not_ignored():
    from adainrt.runtime.controls import masks_for_styles

    with pytest.raises(ControlError, match="empty list of masks"):
        masks_for_styles([], 2)


def test_palette_alpha_and_in_memory_wide_modes(tmp_path):
    rgba = np.zeros((48, 48, 4), np.uint8)
    rgba[..., 2] = 255
    rgba[:, :24, 3] = 255  # hidden blue on the right
    quantized = Image.fromarray(rgba, "RGBA").quantize()  # a palette with alpha
    pixels = np.asarray(to_pil(quantized))
    assert (pixels[:, :24] == [0, 0, 255]).all() and (pixels[:, 24:] == 255).all()
    as_int = Image.fromarray(np.full((40, 40), 200, np.int32))  # mode I made in memory: values as 0..255
    assert (np.asarray(to_pil(as_int)) == 200).all()


def test_a_riff_file_that_is_no_webp_is_not_called_a_damaged_one(tmp_path):
    path = tmp_path / "sound.jpg"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32))
    with pytest.raises(ImageError, match="not an image file"):
        load_image(path)


def test_ffmpeg_reason_is_its_last_line_never_a_separator():
    from adainrt.runtime.video import ffmpeg_reason

    banner = "Could not load meta information\n=== stderr ===\nffmpeg version 7\n  built with gcc\nx.mp4: Invalid data"
    assert ffmpeg_reason(RuntimeError(banner)) == "x.mp4: Invalid data"
    assert ffmpeg_reason(RuntimeError("=== stderr ===\n")) == "RuntimeError"


def test_cache_clear_never_removes_a_style_bank_inside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path / "cache" / "onnx" / "styles"))
    stats = StyleStats(np.zeros((1, 512, 1, 1), np.float32), np.ones((1, 512, 1, 1), np.float32))
    StyleBank().add("mine", stats, {"source": "test"})
    result = run("cache", "clear", "onnx")
    assert one_line_error(result) and "holds the style bank" in result.output
    assert StyleBank().names() == ["mine"]


def test_a_server_that_cannot_write_answers_500_not_the_clients_400():
    from adainrt.server import status_of

    assert status_of(OutputUnwritable("cannot write into /bank: it is on a read-only file system")) == 500


def test_an_output_folder_that_is_a_dangling_link_is_named(tmp_path, style):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    with pytest.raises(OutputUnwritable, match=r"out is a link to .*gone, which does not exist"):
        plan_outputs(style, tmp_path / "out" / "x.png", [str(style)])
