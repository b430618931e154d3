"""The OpenVINO backend: parity with onnxruntime in f32 and bf16, the precision it picks, its model cache."""

import numpy as np
import pytest

from adainrt import hardware
from adainrt.errors import BackendUnavailable
from adainrt.fileio import cache_root
from adainrt.runtime import Stylizer, get_backend, open_graph
from adainrt.runtime.backends import openvino as ov_backend
from tests.helpers import folder_state, psnr, synthetic_image

needs_bf16 = pytest.mark.skipif(hardware.native_bf16() is None,
                                reason="this CPU has no native bf16 (avx512_bf16 or amx_bf16); OpenVINO would "
                                       "emulate it slowly")


def test_f32_full_graph_matches_onnxruntime_within_the_contract(exported_dir):
    from adainrt.contract import GRAPHS

    rng = np.random.default_rng(3)
    feeds = {"content": rng.random((1, 3, 77, 101), np.float32), "style": rng.random((1, 3, 64, 90), np.float32),
             "alpha": np.array([0.7], np.float32)}
    with open_graph(exported_dir / "adain_full.onnx", "openvino", "fp32") as runner, \
            open_graph(exported_dir / "adain_full.onnx", "ort-cpu") as reference:
        got, expected = runner.infer(feeds)["image"], reference.infer(feeds)["image"]
        assert runner.metadata["adainrt_graph"] == "full"
    assert got.shape == expected.shape == (1, 3, 77, 101)
    output_range = float(expected.max() - expected.min())
    assert np.abs(got - expected).max() <= GRAPHS["full"].tolerance.fp32_rel * 10 * output_range
    # f32 is f32 up to summation order (bench: 125 dB on the bundled photo)
    assert psnr(np.clip(got, 0, 1), np.clip(expected, 0, 1)) >= 80.0


def test_stylizer_on_openvino_keeps_sizes_and_matches_onnxruntime(exported_dir):
    content, style = synthetic_image(45, 61, seed=1), synthetic_image(64, 70, seed=2)
    with Stylizer(exported_dir, backend="openvino", precision="fp32") as stylizer:
        out = stylizer.stylize(np.asarray(content) / 255.0, style, alpha=0.8)
        assert stylizer.metadata["encoder_hash"]
    with Stylizer(exported_dir, backend="ort-cpu") as reference:
        expected = reference.stylize(np.asarray(content) / 255.0, style, alpha=0.8)
    assert out.shape == expected.shape == (45, 61, 3)
    assert np.abs(out - expected).max() <= 1e-3


def test_precision_follows_the_cpu(monkeypatch):
    backend = get_backend("openvino")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert ov_backend.default_precision()[0] == "bf16" and backend.precision()[0] == "bf16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f"})
    precision, why = backend.precision()
    assert precision == "fp32" and "no native bf16" in why
    with pytest.raises(BackendUnavailable, match="only with native bf16.*use --precision fp32"):
        backend.precision("bf16")  # refused when chosen, before any graph is read
    assert backend.usable_precisions() == ("fp32",)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # an AVX-512 machine made to run as an AVX2-only one
    precision, why = backend.precision()
    assert precision == "fp32" and "ONEDNN_MAX_CPU_ISA=AVX2" in why
    assert "capped at AVX2 by ONEDNN_MAX_CPU_ISA" in hardware.describe_cpu()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")  # bf16 kept, AMX capped away
    assert hardware.native_bf16() == "avx512_bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "not-an-isa")
    assert hardware.isa_cap() is None and hardware.native_bf16() == "amx_bf16"
    with pytest.raises(BackendUnavailable, match="openvino runs fp32, bf16, not fp16"):
        backend.precision("fp16")


def test_compiled_models_are_cached(exported_dir, tmp_path, monkeypatch):
    """The first open fills the OpenVINO cache under $ADAINRT_CACHE; a second open compiles nothing new."""
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path))
    folder = cache_root() / "openvino"
    assert not folder_state(folder)
    with open_graph(exported_dir / "adain_style.onnx", "openvino", "fp32"):
        pass
    first = folder_state(folder)
    assert first, "opening a graph cached no compiled model"
    with open_graph(exported_dir / "adain_style.onnx", "openvino", "fp32"):
        pass
    assert folder_state(folder) == first  # read back, not rewritten


@needs_bf16
@pytest.mark.slow
def test_bf16_holds_40_db_on_the_bundled_photo_and_decoder():
    """The shipped decoder on a real photo and painting: bf16 against FP32 onnxruntime."""
    from adainrt.contract import GRAPHS
    from adainrt.export.cache import cached_model_dir
    from adainrt.images import bundled_sample, load_image, resize_smaller_side

    folder = cached_model_dir(None, None, ("split",))
    photo = np.asarray(resize_smaller_side(load_image(bundled_sample("astronaut")), 256)) / 255.0
    painting = resize_smaller_side(load_image(bundled_sample("strokes")), 256)
    with Stylizer(folder, backend="openvino", precision="bf16") as stylizer:
        got = stylizer.stylize(photo, painting)
    with Stylizer(folder, backend="ort-cpu") as reference:
        expected = reference.stylize(photo, painting)
    assert psnr(got, expected) >= GRAPHS["full"].tolerance.psnr_db


def test_isa_cap_reaches_the_convolutions(exported_dir):
    """The README's AVX2-only stand-in rests on this: under ONEDNN_MAX_CPU_ISA=AVX2, OpenVINO runs
    every convolution on an AVX2 (or lower) kernel, even on an AVX-512 CPU."""
    import json
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "adainrt.benchmarks.openvino_isa", "--model", str(exported_dir),
                          "--size", "64", "--runs", "1", "--json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    convolutions = [row for row in result["rows"] if row["layer"] == "Convolution"]
    assert convolutions and {row["isa"] for row in convolutions} <= {"avx2", "sse41", "uni"}
    assert sum(result["isa_shares"].values()) == pytest.approx(1.0)
    assert "capped at AVX2" in result["cpu"]


def test_kernel_isa_reads_openvino_kernel_names():
    from adainrt.benchmarks.openvino_isa import kernel_isa

    assert kernel_isa("brgconv_avx512_f32") == "avx512"
    assert kernel_isa("brgconv_avx512_amx_bf16") == "amx"
    assert kernel_isa("jit_avx2_f32") == "avx2"
    assert kernel_isa("ref_f32") == "ref"
    assert kernel_isa("unknown_f32") == "other"


def test_bf16_refused_where_the_cpu_lacks_it(exported_dir, monkeypatch):
    """Without native bf16 OpenVINO emulates it slowly, and under an ISA cap its kernels crash:
    refused before compiling, with the fix."""
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(BackendUnavailable, match="ONEDNN_MAX_CPU_ISA=AVX2: use --precision fp32"):
        open_graph(exported_dir / "adain_decoder.onnx", "openvino", "bf16")


def test_one_runner_serves_several_threads(exported_dir):
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    feeds = [{"content_features": rng.random((1, 512, 5, 6), np.float32),
              "style_mean": rng.random((1, 512, 1, 1), np.float32),
              "style_std": rng.random((1, 512, 1, 1), np.float32) + 0.5,
              "alpha": np.array([0.5 + 0.1 * i], np.float32)} for i in range(4)]
    with open_graph(exported_dir / "adain_decoder.onnx", "openvino", "fp32") as runner:
        alone = [runner.infer(feed)["image"] for feed in feeds]
        with ThreadPoolExecutor(4) as pool:
            together = list(pool.map(lambda feed: runner.infer(feed)["image"], feeds * 4))
    for index, image in enumerate(together):
        assert np.abs(image - alone[index % 4]).max() <= 1e-5


def test_errors_keep_openvino_s_reason(exported_dir):
    from adainrt.errors import ModelError

    feeds = {"content_features": np.zeros((1, 512, 4, 4), np.float32), "style_mean": np.zeros((1, 512), np.float32),
             "style_std": np.ones((1, 512, 1, 1), np.float32), "alpha": np.ones(1, np.float32)}
    with open_graph(exported_dir / "adain_decoder.onnx", "openvino", "fp32") as runner, \
            pytest.raises(ModelError, match=r"OpenVINO failed to run it \(.*shape") as caught:
        runner.infer(feeds)
    assert "Exception from" not in str(caught.value)


@needs_bf16
def test_statistics_study_keeps_the_adain_part_in_f32(exported_dir, tmp_path):
    """The README's bf16-statistics figures rest on this: the marked nodes really run in f32."""
    import openvino as ov

    from adainrt.benchmarks.openvino_statistics import statistics_kept_f32

    core = ov.Core()
    model, marked = statistics_kept_f32(core, exported_dir / "adain_decoder.onnx", tmp_path)
    assert marked > 10

    def reduce_precisions(compiled) -> set[str]:
        return {node.get_rt_info()["runtimePrecision"].astype(str) for node in compiled.get_runtime_model().get_ops()
                if node.get_rt_info()["layerType"].astype(str) == "Reduce"} - {"i32"}

    bf16 = {"INFERENCE_PRECISION_HINT": "bf16"}
    assert "bf16" in reduce_precisions(core.compile_model(str(exported_dir / "adain_decoder.onnx"), "CPU", bf16))
    assert reduce_precisions(core.compile_model(model, "CPU", bf16)) == {"f32"}
