"""TensorRT engines: profile and sidecar logic on any machine; building and running on a GPU."""


import numpy as np
import pytest
from click.testing import CliRunner

from adainrt.bundled import bundled_decoder_path
from adainrt.cli import main
from adainrt.errors import ModelError
from adainrt.runtime.backends.tensorrt.engine import (
    EngineSidecar,
    InputProfile,
    check_compatible,
    check_shapes,
    default_profiles,
    engine_cache_key,
    parse_shapes,
    parse_size,
    read_sidecar,
    sidecar_path,
)
from tests.helpers import needs_backend, tensorrt_and_gpu


def sidecar(**kw) -> EngineSidecar:
    base = dict(tensorrt_version="11.4.0", gpu_name="NVIDIA H100", compute_capability="9.0", precision="fp16",
                onnx_file="adain_full_fp16.onnx", onnx_sha256="ab" * 32,
                profiles=default_profiles(["content", "style", "alpha"]))
    return EngineSidecar(**{**base, **kw})


def test_sizes_and_trtexec_shapes_parse():
    assert parse_size("512") == (512, 512) and parse_size("512x768") == (512, 768)
    assert parse_shapes("content:1x3x256x256, style:1x3x128x96") == {"content": (1, 3, 256, 256),
                                                                     "style": (1, 3, 128, 96)}
    with pytest.raises(ModelError, match="name:AxBxCxD"):
        parse_shapes("content=1x3x256x256")
    with pytest.raises(ModelError, match="N or HxW"):
        parse_size("big")


def test_default_profiles_cover_every_size_the_runtime_sends():
    full = {p.name: p for p in default_profiles(["content", "style", "alpha"])}
    assert set(full) == {"content", "style"}  # alpha is static
    assert full["content"] == InputProfile("content", (1, 3, 32, 32), (1, 3, 512, 512), (1, 3, 2048, 2048))
    for shape in [(1, 3, 200, 300), (1, 3, 600, 1100), (1, 3, 1500, 1500), (1, 3, 2048, 2048)]:
        assert full["content"].contains(shape)
    assert full["style"].contains((1, 3, 512, 1100)) and full["style"].contains((1, 3, 128, 128))
    decoder = default_profiles(["content_features", "style_mean", "style_std", "alpha"], max_batch=4)
    assert decoder == [InputProfile("content_features", (1, 512, 4, 4), (1, 512, 64, 64), (4, 512, 256, 256)),
                       InputProfile("style_mean", (1, 512, 1, 1), (1, 512, 1, 1), (4, 512, 1, 1)),
                       InputProfile("style_std", (1, 512, 1, 1), (1, 512, 1, 1), (4, 512, 1, 1)),
                       InputProfile("alpha", (1,), (1,), (4,))]  # statistics and alpha per item
    custom = default_profiles(["content"], overrides={"max": {"content": (1, 3, 4096, 4096)}})
    assert custom[0].max == (1, 3, 4096, 4096)
    with pytest.raises(ModelError, match="min <= opt <= max"):
        default_profiles(["content"], min_hw=(512, 512), opt_hw=(256, 256))


def test_sidecar_roundtrip_and_compatibility(tmp_path):
    engine = tmp_path / "adain_full_fp16.engine"
    engine.write_bytes(b"engine")
    sidecar_path(engine).write_text(sidecar().to_json())
    loaded = read_sidecar(engine)
    assert loaded == sidecar()
    check_compatible(loaded, "11.4.0", "NVIDIA H100", "9.0")
    with pytest.raises(ModelError, match="TensorRT 11.4.0, but TensorRT 10.13.0 is installed"):
        check_compatible(loaded, "10.13.0", "NVIDIA H100", "9.0")
    with pytest.raises(ModelError, match="built for NVIDIA H100 .* this GPU is NVIDIA A10"):
        check_compatible(loaded, "11.4.0", "NVIDIA A10", "8.6")
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable engine sidecar"):
        read_sidecar(engine)
    with pytest.raises(ModelError, match="no sidecar"):
        read_sidecar(tmp_path / "other.engine")


def test_shapes_outside_the_profile_are_refused_clearly():
    check_shapes(sidecar(), {"content": (1, 3, 512, 640), "style": (1, 3, 256, 256)})
    with pytest.raises(ModelError, match="content has shape 1x3x4096x512, outside .*1x3x32x32 .. 1x3x2048x2048"):
        check_shapes(sidecar(), {"content": (1, 3, 4096, 512)})


def test_engine_cache_key_changes_with_what_invalidates_an_engine():
    profiles = default_profiles(["content"])
    key = engine_cache_key("h", "11.4.0", "9.0", profiles, "fp16")
    assert key == engine_cache_key("h", "11.4.0", "9.0", profiles, "fp16")
    assert len({key, engine_cache_key("h2", "11.4.0", "9.0", profiles, "fp16"),
                engine_cache_key("h", "11.5.0", "9.0", profiles, "fp16"),
                engine_cache_key("h", "11.4.0", "8.9", profiles, "fp16"),
                engine_cache_key("h", "11.4.0", "9.0", default_profiles(["content"], max_hw=(1024, 1024)), "fp16"),
                }) == 5


def test_build_engine_cli_dry_run_and_missing_tensorrt(exported_dir):
    runner = CliRunner()
    result = runner.invoke(main, ["build-engine", str(exported_dir / "adain_full.onnx"), "--dry-run", "--max",
                                  "768x1024"])
    assert result.exit_code == 0, result.output
    assert '"max": [\n   1,\n   3,\n   768,\n   1024' in result.output
    if tensorrt_and_gpu() is not None:
        result = runner.invoke(main, ["build-engine", str(exported_dir / "adain_full.onnx")])
        assert result.exit_code == 1 and "TensorRT" in result.output


def test_build_engine_on_a_file_that_is_no_graph_is_one_line(tmp_path):
    text = tmp_path / "weights.pth"
    text.write_text("not a graph")
    result = CliRunner().invoke(main, ["build-engine", str(text), "--dry-run"])
    assert result.exit_code == 1 and "weights.pth: not a readable ONNX graph" in result.output
    assert "Traceback" not in result.output


@needs_backend("tensorrt")
def test_fp16_engine_matches_fp32_onnxruntime(tmp_path, exported_dir, model):
    from adainrt.export import export_model
    from adainrt.runtime import open_graph
    from adainrt.runtime.backends.tensorrt import TensorRTRunner
    from adainrt.runtime.backends.tensorrt.engine import build_engine

    export_model(model[0], tmp_path, "full", model[1], precision="fp16", verify_sizes=((64, 64),))
    engine = tmp_path / "full.engine"
    build_engine(tmp_path / "adain_full_fp16.onnx", engine, default_profiles(["content", "style"]),
                 tmp_path / "timing.cache")
    runner = TensorRTRunner(engine)
    rng = np.random.default_rng(0)
    feeds = {"content": rng.random((1, 3, 512, 384), np.float32), "style": rng.random((1, 3, 256, 256), np.float32),
             "alpha": np.ones(1, np.float32)}
    got = runner.infer(feeds)["image"]
    with open_graph(exported_dir / "adain_full.onnx", "ort-cpu") as reference:
        expected = reference.infer(feeds)["image"]
    mse = np.mean((np.clip(got, 0, 1) - np.clip(expected, 0, 1)) ** 2)
    assert 10 * np.log10(1 / mse) >= 35.0
    with pytest.raises(ModelError, match="outside the engine's profile"):
        runner.infer({**feeds, "content": np.zeros((1, 3, 2112, 2112), np.float32)})  # above 2048
    runner.close()


@needs_backend("tensorrt")
@pytest.mark.skipif(not bundled_decoder_path().is_file(), reason="no decoder bundled in this version")
def test_tensorrt_backend_matches_fp32_cpu_on_a_real_photo_and_painting(tmp_path, monkeypatch):
    """The bundled decoder, the bundled photo and style, through native FP16 engines vs FP32 on the CPU."""
    from adainrt.export.cache import cached_model_dir
    from adainrt.images import bundled_sample, load_image, resize_smaller_side
    from adainrt.runtime import Stylizer

    folder = cached_model_dir(None, None, ("split",), precisions=("fp32", "fp16"))
    photo = resize_smaller_side(load_image(bundled_sample("astronaut")), 512)
    painting = resize_smaller_side(load_image(bundled_sample("strokes")), 256)
    got = np.asarray(Stylizer(folder, backend="tensorrt").stylize(photo, painting), np.float32) / 255
    expected = np.asarray(Stylizer(folder, backend="ort-cpu").stylize(photo, painting), np.float32) / 255
    assert 10 * np.log10(1 / np.mean((got - expected) ** 2)) >= 35.0


@needs_backend("ort-cuda")
def test_ort_cuda_keeps_features_on_the_gpu_and_matches_the_cpu(exported_dir):
    import onnxruntime as ort

    from adainrt.runtime import Stylizer

    cuda, cpu = Stylizer(exported_dir, backend="ort-cuda"), Stylizer(exported_dir, backend="ort-cpu")
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    kept = cuda.encode(np.ascontiguousarray(content.transpose(2, 0, 1)[None] / np.float32(255)), on_device=True)
    assert isinstance(kept, ort.OrtValue) and kept.device_name().lower() == "cuda"
    diff = np.abs(cuda.stylize(content, style).astype(int) - cpu.stylize(content, style).astype(int))
    assert diff.max() <= 2


def test_ort_trt_provider_gets_the_native_profile_and_keyed_caches(exported_dir):
    """onnxruntime's TensorRT provider builds for the same 32..2048 range as the native engines (a new
    size does not rebuild), runs the graph's own types (no FP16 flag) and caches per GPU and TensorRT."""
    from adainrt.runtime.backends.onnxruntime import trt_cache_dir, trt_options

    decoder = trt_options(exported_dir / "adain_decoder.onnx")
    stats = "style_mean:1x512x1x1,style_std:1x512x1x1,alpha:1"
    assert decoder["trt_profile_min_shapes"] == f"content_features:1x512x4x4,{stats}"
    assert decoder["trt_profile_opt_shapes"] == f"content_features:1x512x64x64,{stats}"
    assert decoder["trt_profile_max_shapes"] == f"content_features:1x512x256x256,{stats}"
    full = trt_options(exported_dir / "adain_full.onnx")
    assert full["trt_profile_max_shapes"] == "content:1x3x2048x2048,style:1x3x2048x2048"
    assert full["trt_fp16_enable"] == "False"
    assert full["trt_engine_cache_path"] == full["trt_timing_cache_path"] == str(trt_cache_dir())
    assert "-trt" in trt_cache_dir().name


def test_profiles_refuse_sizes_below_the_graphs_minimum_and_unknown_inputs(exported_dir):
    from adainrt.errors import ModelError
    from adainrt.runtime.backends.tensorrt.engine import profiles_for

    with pytest.raises(ModelError, match="16x16 is below the graphs' minimum of 32x32"):
        profiles_for(exported_dir / "adain_full.onnx", min_size="16")
    with pytest.raises(ModelError, match="shapes for foo: the graph's inputs are content, style, alpha"):
        profiles_for(exported_dir / "adain_full.onnx", shapes={"min": "foo:1x3x64x64"})
    with pytest.raises(ModelError, match="max batch 0"):
        profiles_for(exported_dir / "adain_decoder.onnx", max_batch=0)
