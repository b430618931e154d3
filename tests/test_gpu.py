"""The GPU path on a real NVIDIA GPU, one test per item of the GPU issue (#15).

Each is marked ``gpu`` and skips, with the reason, where TensorRT, CUDA or a GPU is missing: on
our CPU machines they are collected and skipped, so they are NOT verified there. Run them on a
GPU host with ``pytest -m gpu``. The CPU-side checks of the same items (packaging, provider
fallback, profiles, the emulated runner) live in test_packaging, test_tensorrt and
test_tensorrt_emulated.
"""

import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest

from adainrt.contract import Tolerance
from adainrt.errors import ModelError
from tests.helpers import needs_backend, psnr, synthetic_image

#: Least PSNR (dB, 8-bit images) of a GPU stylization against onnxruntime CPU's on the same inputs.
GPU_VS_CPU_PSNR_DB = 35.0


@needs_backend("ort-cuda")
def test_1_one_onnxruntime_distribution_with_the_gpu_providers():
    import onnxruntime as ort

    owners = sorted(d.metadata["Name"].lower() for d in importlib.metadata.distributions()
                    if d.metadata["Name"] and d.metadata["Name"].lower() in ("onnxruntime", "onnxruntime-gpu"))
    assert owners == ["onnxruntime-gpu"]
    assert {"CUDAExecutionProvider", "TensorrtExecutionProvider"} <= set(ort.get_available_providers())


@needs_backend("ort-trt")
def test_2_the_tensorrt_provider_runs_on_the_installed_tensorrt(exported_dir):
    import tensorrt

    from adainrt.runtime import open_graph

    assert tensorrt.__version__.split(".")[0] == "10"  # what onnxruntime-gpu's provider links (libnvinfer.so.10)
    feed = {"content": np.random.default_rng(0).random((1, 3, 64, 96), np.float32)}
    with open_graph(exported_dir / "adain_encoder.onnx", "ort-trt") as runner, \
            open_graph(exported_dir / "adain_encoder.onnx", "ort-cpu") as reference:
        assert runner.providers[0] == "TensorrtExecutionProvider"
        got = runner.infer(feed)["content_features"]
        expected = reference.infer(feed)["content_features"]
    assert got.shape == expected.shape == (1, 512, 8, 12)
    # TensorRT may run FP32 layers in TF32: the graphs' reduced-precision bound, over the features' range
    assert psnr(got, expected, peak=float(np.ptp(expected))) >= Tolerance().psnr_db


@needs_backend("tensorrt")
def test_4_5_6_bench_json_is_json_labels_what_ran_and_auto_is_native_tensorrt(exported_dir):
    from adainrt.runtime import choose

    assert choose("auto").name == "tensorrt"
    done = subprocess.run([sys.executable, "-m", "adainrt.cli", "bench", "--compare", "--size", "64", "--runs", "2",
                           "--warmup", "1", "--json"], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert {"tensorrt", "ort-cuda"} <= {row["backend"] for row in rows}


@needs_backend("ort-trt")
def test_7_a_new_size_does_not_rebuild_the_ort_trt_engine(exported_dir, tmp_path, monkeypatch):
    from adainrt.runtime import Stylizer
    from adainrt.runtime.backends.onnxruntime import trt_cache_dir

    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path))
    with Stylizer(exported_dir, backend="ort-trt", precision="fp32") as stylizer:
        style = synthetic_image(128, 128, seed=1)
        stylizer.stylize(synthetic_image(256, 256, seed=2), style)
        engines = sorted(p.name for p in trt_cache_dir().glob("*.engine"))
        content = synthetic_image(320, 448, seed=3)
        got = stylizer.stylize(content, style)
        assert sorted(p.name for p in trt_cache_dir().glob("*.engine")) == engines and engines
    with Stylizer(exported_dir, backend="ort-cpu") as cpu:
        assert psnr(got, cpu.stylize(content, style)) >= GPU_VS_CPU_PSNR_DB  # the new size ran the right graph


@needs_backend("tensorrt")
def test_8_native_engines_take_every_size_the_runtime_sends():
    from adainrt.export.cache import cached_model_dir
    from adainrt.runtime import Stylizer

    folder = cached_model_dir(None, None, ("split",), precisions=("fp32", "fp16"))
    with Stylizer(folder, backend="tensorrt") as gpu, Stylizer(folder, backend="ort-cpu") as cpu:
        for (height, width), style_hw in [((200, 300), (512, 1100)), ((600, 1100), (128, 128)),
                                          ((1500, 1500), (256, 256)), ((2100, 2300), (256, 256))]:  # the last tiles
            content, style = synthetic_image(height, width, seed=4), synthetic_image(*style_hw, seed=5)
            got = gpu.stylize(content, style)
            assert got.size == (width, height)
            assert psnr(got, cpu.stylize(content, style)) >= GPU_VS_CPU_PSNR_DB, (height, width)


@needs_backend("tensorrt")
def test_9_10_11_features_stay_on_the_device_graphs_are_captured_once_and_close_frees_everything():
    from cuda.bindings import runtime as cudart

    from adainrt.export.cache import cached_model_dir
    from adainrt.runtime import Stylizer
    from adainrt.runtime.backends.tensorrt import DeviceTensor

    folder = cached_model_dir(None, None, ("split",), precisions=("fp16",))
    _err, free_before, _total = cudart.cudaMemGetInfo()
    stylizer = Stylizer(folder, backend="tensorrt")
    content, style = synthetic_image(256, 256, seed=6), synthetic_image(128, 128, seed=7)
    array = np.ascontiguousarray(np.asarray(content, np.float32).transpose(2, 0, 1)[None] / 255)
    assert isinstance(stylizer.encode(array, on_device=True), DeviceTensor)
    outputs = [np.asarray(stylizer.stylize(content, style), np.int16) for _ in range(5)]
    assert all(np.abs(out - outputs[0]).max() <= 1 for out in outputs)  # replays of the captured graph
    assert stylizer.decoder._graph_exec is not None  # captured once the size settled
    stylizer.close()
    _err, free_after, _total = cudart.cudaMemGetInfo()
    assert free_before - free_after < 64 << 20  # within 64 MiB of where it started


@needs_backend("tensorrt")
def test_12_an_engine_for_another_graph_is_refused(tmp_path, exported_dir, model):
    from adainrt.export import export_model
    from adainrt.runtime.backends.tensorrt import TensorRTRunner
    from adainrt.runtime.backends.tensorrt.engine import build_engine, default_profiles

    export_model(model[0], tmp_path, "split", model[1], precision="fp16", verify_sizes=((64, 64),))
    engine = tmp_path / "encoder.engine"
    build_engine(tmp_path / "adain_encoder_fp16.onnx", engine, default_profiles(["content"]), tmp_path / "t.cache")
    with TensorRTRunner(engine) as runner, pytest.raises(ModelError, match="not given"):
        runner.infer({"content_features": np.zeros((1, 512, 8, 8), np.float32)})
