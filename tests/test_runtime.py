"""The onnxruntime Stylizer: types and sizes, style cache, alpha, providers, and no torch needed."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from adainrt.contract import Tolerance
from adainrt.errors import BackendUnavailable, ImageError, ModelError
from adainrt.runtime import InvalidArgument, Stylizer, available, choose, open_graph
from tests.helpers import NO_TORCH_PRELUDE, synthetic_image


@pytest.fixture(scope="module")
def stylizer(exported_dir):
    return Stylizer(exported_dir, backend="ort-cpu")


def test_pil_numpy_and_float_inputs_keep_size_and_type(stylizer):
    content, style = synthetic_image(45, 37, seed=1), synthetic_image(64, 70, seed=2)
    out = stylizer.stylize(content, style, alpha=0.8)
    assert isinstance(out, Image.Image) and out.size == content.size
    out_u8 = stylizer.stylize(np.asarray(content), style)
    assert out_u8.dtype == np.uint8 and out_u8.shape == (45, 37, 3)
    out_f = stylizer.stylize(np.asarray(content) / 255.0, style)
    assert out_f.dtype == np.float32 and out_f.shape == (45, 37, 3)
    assert np.abs(out_f * 255 - np.asarray(stylizer.stylize(content, style))).max() <= 1.0


def test_matches_the_full_graph(stylizer, exported_dir):
    from adainrt.images import to_tensor
    content, style = synthetic_image(77, 101, seed=4), synthetic_image(50, 60, seed=5)
    with open_graph(exported_dir / "adain_full.onnx", "ort-cpu") as full:
        feeds = {"content": to_tensor(content), "style": to_tensor(style), "alpha": np.array([0.6], np.float32)}
        expected = full.infer(feeds)["image"]
    stats = stylizer.style_stats(style)
    got = stylizer.decode(stylizer.encode(to_tensor(content)), stats, 0.6, (77, 101))
    np.testing.assert_allclose(got, expected, atol=Tolerance().fp32_rel)  # the graphs' contract, images in [0, 1]


def test_io_binding_keeps_features_as_ortvalues_and_matches_plain_runs(stylizer, exported_dir):
    import onnxruntime as ort

    from adainrt.images import to_tensor

    content, style = synthetic_image(77, 101, seed=4), synthetic_image(50, 60, seed=5)
    array, stats = to_tensor(content), stylizer.style_stats(style)
    kept = stylizer.encode(array, on_device=True)
    assert isinstance(kept, ort.OrtValue) and kept.device_name() == stylizer.encoder.device == "cpu"
    plain = stylizer.encoder.infer({"content": array})["content_features"]
    np.testing.assert_allclose(kept.numpy(), plain, rtol=1e-5, atol=1e-5)
    one_pass = stylizer.stylize(np.asarray(content) / 255.0, style, alpha=0.6)  # IO-bound path
    two_step = stylizer.decode(plain, stats, 0.6, (77, 101))  # host path
    np.testing.assert_allclose(one_pass, np.clip(two_step[0].transpose(1, 2, 0), 0, 1), atol=1e-6)


def test_style_statistics_are_cached(stylizer):
    style = synthetic_image(64, 64, seed=8)
    first = stylizer.style_stats(style)
    assert stylizer.style_stats(style.copy()) is first
    assert stylizer.style_stats(synthetic_image(64, 64, seed=9)) is not first
    assert first.mean.shape == (1, 512, 1, 1) and (first.std > 0).all()


def test_bad_inputs(stylizer):
    content = synthetic_image(40, 40)
    with pytest.raises(InvalidArgument, match=r"alpha must be in \[0, 1\].*1.5"):
        stylizer.stylize(content, content, alpha=1.5)
    with pytest.raises(ImageError, match="1x1 is too small"):
        stylizer.stylize(Image.new("RGB", (1, 1)), content)
    with pytest.raises(ImageError, match="HxWx3"):
        stylizer.stylize(np.zeros((40, 40)), content)


def test_content_above_the_pixel_limit_is_tiled_or_refused(exported_dir):
    content, style = synthetic_image(64, 80), synthetic_image(64, 64)
    whole = Stylizer(exported_dir, backend="ort-cpu").stylize(content, style)
    tiled = Stylizer(exported_dir, backend="ort-cpu", max_pixels=64 * 64).stylize(content, style)
    assert tiled.size == whole.size == (80, 64)
    small = Stylizer(exported_dir, backend="ort-cpu", max_pixels=64 * 64, tiling=False)
    with pytest.raises(ImageError, match="content is 80x64 .*content size"):
        small.stylize(content, style)


def test_missing_model_folder(tmp_path):
    with pytest.raises(ModelError, match="adainrt export"):
        Stylizer(tmp_path / "nothing")
    with pytest.raises(ModelError, match=r"not a model folder \(it has no manifest.json\).*adainrt export --output"):
        Stylizer(tmp_path)


def test_backend_choice():
    from adainrt.runtime.backends.onnxruntime import provider_chain

    assert "ort-cpu" in available()
    assert choose("auto").name == available()[0]
    assert provider_chain("ort-cpu") == ["CPUExecutionProvider"]
    with pytest.raises(BackendUnavailable, match="unknown backend 'vulkan'; choose auto or one of .*ort-cpu"):
        choose("vulkan")
    if "ort-cuda" not in available():
        with pytest.raises(BackendUnavailable, match="CUDAExecutionProvider"):
            choose("ort-cuda")


def test_runtime_imports_and_runs_without_torch(exported_dir):
    """A subprocess in which importing torch fails: the runtime must not need it."""
    script = NO_TORCH_PRELUDE + textwrap.dedent(f"""
        import numpy as np
        from adainrt.runtime import Stylizer
        out = Stylizer({str(exported_dir)!r}).stylize(np.full((40, 52, 3), 128, np.uint8),
                                                     np.full((48, 48, 3), 60, np.uint8), alpha=0.5)
        assert out.shape == (40, 52, 3), out.shape
        assert "torch" not in sys.modules
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_stylize_many_batches_sizes_styles_and_alphas_like_single_calls(exported_dir):
    """One run per content size, each image with its own style, alpha and controls: the results of
    single calls (and their order), whatever the grouping."""
    from adainrt.runtime import StylizeRequest

    styles = [synthetic_image(64, 80, seed=60), synthetic_image(72, 64, seed=61)]
    requests = [StylizeRequest(synthetic_image(48, 64, seed=62 + k), styles[k % 2], alpha=(0.3, 1.0, 0.7)[k % 3],
                               preserve_color="luminance" if k == 4 else None)
                for k in range(5)]
    requests.append(StylizeRequest(synthetic_image(56, 40, seed=70), styles, alpha=0.9, style_weights=[0.25, 0.75]))
    with Stylizer(exported_dir, backend="ort-cpu", max_pixels=3 * 48 * 64) as stylizer:  # 3 images per run
        runs = []
        real_infer = stylizer.decoder.infer
        stylizer.decoder.infer = lambda feeds, keep=(): runs.append(len(feeds["alpha"])) or real_infer(feeds, keep)
        batched = stylizer.stylize_many(requests)
        stylizer.decoder.infer = real_infer
        for request, got in zip(requests, batched, strict=True):
            single = stylizer.stylize(request.content, request.style, request.alpha,
                                      style_weights=request.style_weights, preserve_color=request.preserve_color)
            assert got.size == single.size
            diff = np.abs(np.asarray(got, np.int16) - np.asarray(single, np.int16))
            assert diff.max() <= 2, diff.max()
    assert sorted(runs) == [1, 2, 3]  # five 48x64 in runs of 3 and 2, the 56x40 alone
