"""The paper's run-time controls on real graphs: alpha, interpolation, masks, colour, style bank, tiles."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.contract import Tolerance
from adainrt.images import to_tensor
from adainrt.runtime import ControlError, StyleStats, Stylizer, interpolate, open_graph
from adainrt.runtime.controls import match_color, match_mean_color, merge_luminance, parse_weights, to_yiq
from adainrt.runtime.style_bank import StyleBank, StyleBankError
from adainrt.runtime.tiling import spans
from tests.helpers import psnr, synthetic_image


@pytest.fixture(scope="module")
def stylizer(exported_dir):
    return Stylizer(exported_dir, backend="ort-cpu")


@pytest.fixture(scope="module")
def images():
    return synthetic_image(96, 120, seed=11), synthetic_image(80, 80, seed=12), synthetic_image(72, 90, seed=13)


def as_float(image) -> np.ndarray:
    return np.asarray(image, np.float32)


def test_alpha_endpoints(stylizer, exported_dir, images):
    content, style, _ = images
    array = to_tensor(content)
    features = stylizer.encode(array)
    reconstruction = stylizer.decode_target(features, array.shape[-2:])
    got = stylizer.stylize(np.asarray(content) / 255.0, style, alpha=0.0)
    split_vs_full = Tolerance().fp32_rel  # the graphs' contract (images in [0, 1]): fusions differ by ISA
    np.testing.assert_allclose(got, np.clip(reconstruction[0].transpose(1, 2, 0), 0, 1), atol=split_vs_full)
    with open_graph(exported_dir / "adain_full.onnx", stylizer.backend) as full:
        expected = full.infer({"content": array, "style": to_tensor(style), "alpha": np.ones(1, np.float32)})["image"]
    got = stylizer.stylize(np.asarray(content) / 255.0, style, alpha=1.0)
    np.testing.assert_allclose(got, np.clip(expected[0].transpose(1, 2, 0), 0, 1), atol=split_vs_full)


def test_interpolation_with_weights_one_zero_is_the_single_style(stylizer, images):
    content, first, second = images
    single = stylizer.stylize(np.asarray(content) / 255.0, first)
    mixed = stylizer.stylize(np.asarray(content) / 255.0, [first, second], style_weights=[1, 0])
    np.testing.assert_allclose(mixed, single, atol=1e-6)
    half = stylizer.stylize(np.asarray(content) / 255.0, [first, second], style_weights=[3, 3])
    assert np.abs(half - single).max() > 1e-4


def test_interpolation_is_linear_in_the_statistics():
    a = StyleStats(np.full((1, 512, 1, 1), 1.0, np.float32), np.full((1, 512, 1, 1), 2.0, np.float32))
    b = StyleStats(np.full((1, 512, 1, 1), 3.0, np.float32), np.full((1, 512, 1, 1), 6.0, np.float32))
    mix = interpolate([a, b], [0.7, 0.3])
    np.testing.assert_allclose(mix.mean, 1.6)
    np.testing.assert_allclose(mix.std, 3.2)
    assert parse_weights("0.7,0.3") == [0.7, 0.3]
    with pytest.raises(ControlError, match="one weight per style"):
        interpolate([a, b], [1.0])
    with pytest.raises(ControlError, match=">= 0"):
        interpolate([a, b], [-1.0, 2.0])


def test_all_white_mask_equals_the_unmasked_result(stylizer, images):
    content, first, second = images
    unmasked = stylizer.stylize(np.asarray(content) / 255.0, first, alpha=0.8)
    white = Image.new("L", content.size, 255)
    masked = stylizer.stylize(np.asarray(content) / 255.0, [first, second], alpha=0.8, mask=white)
    np.testing.assert_allclose(masked, unmasked, atol=1e-5)


def test_mask_regions_take_their_styles(stylizer, images):
    content, first, second = images
    left = np.zeros((96, 120), np.uint8)
    left[:, :56] = 255
    split = as_float(stylizer.stylize(content, [first, second], mask=left))
    only_first = as_float(stylizer.stylize(content, [first, second], mask=np.full((96, 120), 255, np.uint8)))
    only_second = as_float(stylizer.stylize(content, [first, second], mask=np.zeros((96, 120), np.uint8)))
    # Far from the border each half resembles the output of its own style more than the other.
    assert np.abs(split[:, :24] - only_first[:, :24]).mean() < np.abs(split[:, :24] - only_second[:, :24]).mean()
    assert np.abs(split[:, -24:] - only_second[:, -24:]).mean() < np.abs(split[:, -24:] - only_first[:, -24:]).mean()
    with pytest.raises(ControlError, match="2 masks for 3 styles"):
        stylizer.stylize(content, [first, second, first], mask=[left, left])


def test_luminance_mode_keeps_the_content_chrominance(stylizer, images):
    content, style, _ = images
    src = np.asarray(content, np.float32) / 255.0
    # The merge itself: the output's luminance, the content's I and Q (colours kept in gamut).
    rng = np.random.default_rng(0)
    soft = 0.3 + 0.4 * src
    output = np.clip(0.5 + rng.normal(0, 0.1, src.shape), 0, 1).astype(np.float32)
    merged = merge_luminance(output, soft)
    np.testing.assert_allclose(to_yiq(merged)[..., 0], to_yiq(output)[..., 0], atol=2e-3)
    np.testing.assert_allclose(to_yiq(merged)[..., 1:], to_yiq(soft)[..., 1:], atol=2e-3)
    # End to end: the output carries the content's chrominance, whatever the style's colours.
    out = np.asarray(stylizer.stylize(content, style, preserve_color="luminance"), np.float32) / 255.0
    assert out.shape == src.shape
    assert np.abs(to_yiq(out)[..., 1:] - to_yiq(src)[..., 1:]).mean() < 0.03


def test_color_match_gives_the_content_mean_and_covariance(images):
    content, style, _ = images
    # Moderate colours, so the [0, 1] clipping of the recoloured style stays negligible.
    c, s = (0.3 + 0.4 * np.asarray(img, np.float32) / 255 for img in (content, style))
    recoloured = match_color(s, c)
    np.testing.assert_allclose(recoloured.reshape(-1, 3).mean(0), c.reshape(-1, 3).mean(0), atol=0.02)
    np.testing.assert_allclose(np.cov(recoloured.reshape(-1, 3).T), np.cov(c.reshape(-1, 3).T), atol=0.01)


def test_color_mode_gives_the_photo_mean_colour_whatever_the_decoder_cast(stylizer, images):
    content, style, _ = images
    src = np.asarray(content, np.float32) / 255.0
    plain = np.asarray(stylizer.stylize(content, style), np.float32) / 255.0
    kept = np.asarray(stylizer.stylize(content, style, preserve_color="color"), np.float32) / 255.0
    miss = np.abs(kept.reshape(-1, 3).mean(0) - src.reshape(-1, 3).mean(0)).max()
    # the seeded random decoder has a strong cast of its own: recolouring the style alone leaves it
    assert np.abs(plain.reshape(-1, 3).mean(0) - src.reshape(-1, 3).mean(0)).max() > 0.05
    assert miss < 0.01  # issue #25 asks for 0.05; the shift and 8-bit rounding leave less
    # it is a shift of the recoloured-style output, per channel, nothing else (strokes, contrast kept)
    recoloured = match_color(np.asarray(style, np.float32) / 255.0, src)
    unshifted = np.asarray(stylizer.stylize(content, (recoloured * 255 + 0.5).astype(np.uint8)), np.float32) / 255.0
    inside = (kept > 0.01) & (kept < 0.99) & (unshifted > 0.01) & (unshifted < 0.99)
    moved = [(kept - unshifted)[..., c][inside[..., c]] for c in range(3)]
    moved = [m for m in moved if m.size > 100]  # a channel the random decoder saturates has nothing to compare
    assert len(moved) >= 2 and all(m.std() < 3 / 255 for m in moved)


def test_mean_colour_shift_survives_clipping():
    rng = np.random.default_rng(1)
    output = np.clip(rng.normal(0.8, 0.2, (32, 32, 3)), 0, 1).astype(np.float32)  # bright, much of it at 1
    content = np.clip(rng.normal([0.3, 0.5, 0.6], 0.1, (40, 24, 3)), 0, 1).astype(np.float32)
    shifted = match_mean_color(output, content)
    np.testing.assert_allclose(shifted.reshape(-1, 3).mean(0), content.reshape(-1, 3).mean(0), atol=5e-3)
    assert shifted.min() >= 0.0 and shifted.max() <= 1.0


def test_stored_style_gives_the_same_output_as_its_image(tmp_path, stylizer, images, exported_dir, monkeypatch):
    content, style, _ = images
    style.save(tmp_path / "painting.png")
    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path / "bank"))
    runner = CliRunner()
    result = runner.invoke(main, ["style", "add", "mine", str(tmp_path / "painting.png"), "--model",
                                  str(exported_dir), "--style-size", "0", "--backend", "ort-cpu"])
    assert result.exit_code == 0, result.output
    stored = StyleBank(tmp_path / "bank").get("mine", stylizer.metadata["encoder_hash"])
    assert stored.info["source_sha256"] and stored.info["encoder_hash"] == stylizer.metadata["encoder_hash"]
    direct = stylizer.style_stats(style)
    for stored_part, direct_part in ((stored.stats.mean, direct.mean), (stored.stats.std, direct.std)):
        np.testing.assert_allclose(stored_part, direct_part, rtol=1e-5, atol=1e-6)
    from_image = stylizer.stylize(np.asarray(content) / 255.0, style)
    from_bank = stylizer.stylize(np.asarray(content) / 255.0, stored.stats)
    np.testing.assert_allclose(from_bank, from_image, atol=1e-6)
    with pytest.raises(StyleBankError, match="computed with encoder"):
        StyleBank(tmp_path / "bank").get("mine", "another-encoder")
    result = runner.invoke(main, ["style", "add", "mine", str(tmp_path / "painting.png"), "--model", str(exported_dir)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert "mine" in runner.invoke(main, ["style", "list"]).output
    assert runner.invoke(main, ["style", "remove", "mine"]).exit_code == 0
    assert StyleBank(tmp_path / "bank").names() == []


def test_tiles_cover_the_axis_once():
    parts = spans(1000, 384, 64)
    assert [(k0, k1) for _, _, k0, k1 in parts] == [(0, 384), (384, 768), (768, 1000)]
    assert parts[1][:2] == (320, 832)


@pytest.mark.slow
def test_tiled_and_untiled_agree_without_seams(exported_dir):
    big = np.asarray(synthetic_image(1024, 1024, seed=21), np.float32) / 255.0
    style = synthetic_image(128, 128, seed=22)
    whole = Stylizer(exported_dir, backend="ort-cpu", max_pixels=1024 * 1024).stylize(big, style)
    tiled_stylizer = Stylizer(exported_dir, backend="ort-cpu", max_pixels=(512 + 128) ** 2)
    assert tiled_stylizer._tile() == 512
    tiled = tiled_stylizer.stylize(big, style)
    assert tiled.shape == whole.shape == (1024, 1024, 3)
    assert psnr(tiled, whole, peak=float(whole.max() - whole.min())) >= 35.0
    # No seam: around the tile boundaries (x = 512, y = 512) the outputs still agree.
    value_range = whole.max() - whole.min()
    assert np.abs(tiled - whole)[:, 504:520].max() <= 1e-3 * value_range
    assert np.abs(tiled - whole)[504:520, :].max() <= 1e-3 * value_range
    with pytest.raises(Exception, match="megapixels"):
        Stylizer(exported_dir, backend="ort-cpu", max_pixels=512 * 512, tiling=False).stylize(big, style)
