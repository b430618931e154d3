"""The decoder that ships in the package: pairs with the embedded encoder, and stylizes a photo."""

import numpy as np
import pytest
import torch

from adainrt.images import bundled_sample, load_image, resize_smaller_side, to_tensor
from adainrt.runtime.controls import match_color, match_mean_color
from adainrt.weights import bundled_decoder_path, load_decoder, load_encoder

pytestmark = pytest.mark.skipif(not bundled_decoder_path().is_file(), reason="no decoder bundled in this version")


@pytest.fixture(scope="module")
def networks():
    encoder, meta = load_encoder()
    decoder, dec_meta = load_decoder(None, meta)
    return encoder, decoder, dec_meta


def stylize(networks, content: np.ndarray, style: np.ndarray) -> np.ndarray:
    from adainrt.network import AdaINModel

    model = AdaINModel(networks[0], networks[1]).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(content), torch.from_numpy(style), torch.ones(1))
    return out.clamp(0, 1).numpy()[0].transpose(1, 2, 0)


def test_bundled_decoder_is_fp16_and_paired_with_the_embedded_encoder(networks):
    _, _, meta = networks
    assert meta["dtype"] == "float16" and meta["steps"] > 0 and meta["evaluation"]["pairs"] >= 36


def test_color_preservation_keeps_the_photo_mean_colour(networks):
    photo = resize_smaller_side(load_image(bundled_sample("astronaut")), 256)
    style = resize_smaller_side(load_image(bundled_sample("strokes")), 256)
    content = to_tensor(photo)
    photo_rgb = np.asarray(photo, np.float32) / 255.0
    recoloured = match_color(np.asarray(style, np.float32) / 255.0, photo_rgb)
    plain = stylize(networks, content, to_tensor(style))
    kept = stylize(networks, content, np.ascontiguousarray(recoloured.transpose(2, 0, 1)[None]))
    error_kept = np.abs(kept.mean((0, 1)) - photo_rgb.mean((0, 1))).max()
    error_plain = np.abs(plain.mean((0, 1)) - photo_rgb.mean((0, 1))).max()
    shifted = match_mean_color(kept, photo_rgb)  # what the runtime's colour mode returns (runtime/stylizer.py)
    error_shifted = np.abs(shifted.mean((0, 1)) - photo_rgb.mean((0, 1))).max()
    # The decoder's own colour cast (MODEL_CARD.md, known weaknesses) bounds how close the recoloured
    # style alone gets: measured kept vs plain 0.064 / 0.103 with v0.1, 0.109 / 0.126 with v0.2,
    # 0.046 / 0.089 with v0.3, 0.077 / 0.117 with v0.4, 0.096 / 0.150 with v0.5, 0.084 / 0.125 with
    # v0.6, 0.088 / 0.132 with v0.7, 0.086 / 0.124 with v0.8, 0.093 / 0.121 with v0.9, 0.089 / 0.110
    # with v0.10, 0.108 / 0.128 with v0.11, 0.093 / 0.118 with v0.12, 0.088 / 0.130 with v0.13; the
    # runtime then shifts the output to the photo's mean colour (issue #25: within 0.05).
    assert error_kept < 0.12 and error_kept < error_plain
    assert error_shifted < 0.01


@pytest.mark.slow
def test_color_mode_keeps_the_photo_mean_colour_on_held_out_pairs(shared_data):
    """Issue #25: `--preserve-color color` within 0.05 per channel of the photo's mean colour, through
    the runtime (the bundled decoder's exported graphs), on photos and styles it never trained on."""
    from adainrt.export.cache import cached_model_dir
    from adainrt.runtime.jobs import open_stylizer
    from adainrt.train.data import default_heldout_list, read_heldout_list

    heldout = read_heldout_list(default_heldout_list())
    photos = sorted(heldout["content"])[::8]
    styles = sorted(heldout["style"])[::5]
    # the bundled weights, exported once
    stylizer = open_stylizer(None, None, None, "ort-cpu", None, graphs=cached_model_dir)
    try:
        for photo_name, style_name in zip(photos, styles):
            photo = resize_smaller_side(load_image(shared_data / "content" / photo_name), 256)
            style = resize_smaller_side(load_image(shared_data / "style" / style_name), 256)
            out = np.asarray(stylizer.stylize(photo, style, preserve_color="color"), np.float32) / 255.0
            miss = np.abs(out.reshape(-1, 3).mean(0) - np.asarray(photo, np.float32).reshape(-1, 3).mean(0) / 255.0)
            assert miss.max() < 0.05, (photo_name, style_name, miss)
    finally:
        stylizer.close()
