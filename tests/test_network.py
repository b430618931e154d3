"""The network definition: AdaIN's equation, the published key layouts, sizes, alpha."""

import numpy as np
import pytest
import torch

from adainrt.network import (
    ADAIN_EPS,
    AdaINModel,
    adain,
    build_decoder,
    build_encoder,
    conv_layers,
    encode_with_intermediates,
    mean_std,
)

# Conv indices of pytorch-AdaIN's nn.Sequential models (vgg_normalised truncated at relu4_1).
PORT_ENCODER_CONVS = ["0", "2", "5", "9", "12", "16", "19", "22", "25", "29"]
PORT_DECODER_CONVS = ["1", "5", "8", "11", "14", "18", "21", "25", "28"]


def test_conv_indices_match_the_pytorch_port():
    assert [k for k, _ in conv_layers(build_encoder())] == PORT_ENCODER_CONVS
    assert [k for k, _ in conv_layers(build_decoder())] == PORT_DECODER_CONVS
    assert len(build_encoder()) == 31  # modules 0..30, ending at relu4_1
    assert not any("norm" in type(m).__name__.lower() for m in build_decoder())


def test_adain_matches_the_equation():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (2, 4, 5, 7)).astype(np.float32)
    y = rng.normal(-1.0, 0.5, (2, 4, 6, 3)).astype(np.float32)
    out = adain(torch.from_numpy(x), torch.from_numpy(y)).numpy()

    def stats(a):
        flat = a.reshape(*a.shape[:2], -1).astype(np.float64)
        return flat.mean(-1)[..., None, None], np.sqrt(flat.var(-1, ddof=1) + ADAIN_EPS)[..., None, None]

    (mx, sx), (my, sy) = stats(x), stats(y)
    np.testing.assert_allclose(out, sy * (x - mx) / sx + my, rtol=1e-5, atol=1e-5)
    # The output carries the style's statistics.
    mo, so = mean_std(torch.from_numpy(out))
    np.testing.assert_allclose(mo.numpy(), my, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(so.numpy(), sy, rtol=1e-3, atol=1e-4)


def test_mean_std_is_unbiased_and_float32_for_half_input():
    feat = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mean, std = mean_std(feat)
    assert mean.item() == pytest.approx(2.5)
    assert std.item() == pytest.approx(np.sqrt(np.var([1, 2, 3, 4], ddof=1) + ADAIN_EPS), rel=1e-6)
    assert mean_std(feat.half())[1].dtype == torch.float32


@pytest.mark.parametrize("size", [(32, 32), (37, 45), (64, 72), (333, 517)])
def test_output_has_the_content_size(size):
    torch.manual_seed(0)
    model = AdaINModel(build_encoder(), build_decoder()).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size), torch.rand(1, 3, 50, 41), torch.tensor([0.5]))
    assert out.shape == (1, 3, *size)


def test_alpha_zero_is_the_content_reconstruction():
    torch.manual_seed(0)
    model = AdaINModel(build_encoder(), build_decoder()).eval()
    content, style = torch.rand(1, 3, 48, 56), torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = model(content, style, torch.tensor([0.0]))
        expected = model.decoder(model.encoder(content))
    torch.testing.assert_close(out, expected)


def test_intermediates_are_relu_outputs_at_the_style_layers():
    torch.manual_seed(0)
    encoder = build_encoder().eval()
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = encode_with_intermediates(encoder, image)
        torch.testing.assert_close(feats[-1], encoder(image))
        torch.testing.assert_close(feats[0], encoder[:4](image))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8]
    assert all((f >= 0).all() for f in feats)
