"""The native TensorRT runner's logic, driven through tests/trt_emulation.py: AN EMULATION of the
tensorrt and cuda-python calls (onnxruntime CPU sessions behind the engines, host buffers as device
memory). It checks buffers, copies, graphs and freeing; it is not GPU verification."""

import shutil

import numpy as np
import pytest

from adainrt.runtime import Stylizer
from tests import trt_emulation
from tests.helpers import synthetic_image


@pytest.fixture(scope="module")
def fp16_graphs(exported_dir, model, tmp_path_factory):
    from adainrt.export import export_model

    folder = tmp_path_factory.mktemp("graphs-trt") / "graphs"
    shutil.copytree(exported_dir, folder)
    for form in ("split", "full"):
        export_model(model[0], folder, form, model[1], precision="fp16", verify_sizes=((64, 64),))
    return folder


@pytest.fixture()
def cuda(monkeypatch, tmp_path):
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    return trt_emulation.install(monkeypatch)


def test_stylizer_builds_once_keeps_features_on_the_device_and_frees_everything(cuda, fp16_graphs):
    content, style = synthetic_image(77, 101, seed=1), synthetic_image(64, 64, seed=2)
    with Stylizer(fp16_graphs, backend="tensorrt") as stylizer:
        assert stylizer.precision == "fp16" and cuda.counts["builds"] == 3  # prepared: built into the cache
        out = stylizer.stylize(np.asarray(content) / 255.0, style)
        stats = stylizer.style_stats(style)
        before = dict(cuda.counts)
        array = np.ascontiguousarray((np.asarray(content, np.float32) / 255).transpose(2, 0, 1)[None])
        image = stylizer.decode(stylizer.encode(array, on_device=True), stats, 1.0, (77, 101))
        assert cuda.counts["d2h"] - before.get("d2h", 0) == 1  # the image only: relu4_1 never came back
        assert cuda.counts["d2d"] == 0
    assert cuda.live() == {"device": 0, "host": 0, "streams": 0, "graphs": 0, "graph_execs": 0}
    with Stylizer(fp16_graphs, backend="ort-cpu", precision="fp16") as reference:
        expected = reference.stylize(np.asarray(content) / 255.0, style)
    assert np.abs(out - expected).max() <= 1e-3 and image.shape == (1, 3, 77, 101)
    with Stylizer(fp16_graphs, backend="tensorrt"):
        assert cuda.counts["builds"] == 3  # found in the cache, not rebuilt


def test_opening_never_builds_an_engine_prepare_does_once(cuda, fp16_graphs):
    from adainrt.errors import ModelError
    from adainrt.runtime import get_backend

    backend, graph = get_backend("tensorrt"), fp16_graphs / "adain_full_fp16.onnx"
    with pytest.raises(ModelError, match="adainrt build-engine"):
        backend.open(graph, "fp16")
    assert cuda.counts["builds"] == 0
    backend.prepare(graph, "fp16")
    assert cuda.counts["builds"] == 1
    for _ in range(2):
        backend.open(graph, "fp16").close()
    backend.prepare(graph, "fp16")  # found in the cache
    assert cuda.counts["builds"] == 1
    assert cuda.live() == {"device": 0, "host": 0, "streams": 0, "graphs": 0, "graph_execs": 0}


@pytest.mark.parametrize("size", [(32, 32), (33, 47), (200, 300), (600, 110)])
def test_every_size_the_stylizer_accepts_runs(cuda, fp16_graphs, size):
    """Padding and cropping around the engines' profiles: the emulated runner's output is onnxruntime's."""
    content, style = np.asarray(synthetic_image(*size, seed=3)) / 255.0, synthetic_image(48, 48)
    with Stylizer(fp16_graphs, backend="tensorrt") as stylizer:
        out = stylizer.stylize(content, style)
    with Stylizer(fp16_graphs, backend="ort-cpu", precision="fp16") as reference:
        expected = reference.stylize(content, style)
    assert out.shape == expected.shape == (*size, 3)
    assert np.abs(out - expected).max() <= 1e-3


def test_cuda_graph_is_captured_once_sizes_settle_and_recapture_leaks_nothing(cuda, fp16_graphs):
    from adainrt.runtime.backends.tensorrt import TensorRTRunner
    from adainrt.runtime.backends.tensorrt.engine import cached_engine

    runner = TensorRTRunner(cached_engine(fp16_graphs / "adain_style_fp16.onnx"))
    rng = np.random.default_rng(0)
    first = rng.random((1, 3, 64, 64), np.float32)
    results = [runner.infer({"style": first}) for _ in range(4)]
    assert cuda.counts["capture"] == 1 and cuda.counts["launch"] == 2  # run, run + capture, replay, replay
    assert cuda.counts["execute"] == 4  # one inference per call: capturing ran nothing extra
    for result in results[1:]:
        np.testing.assert_allclose(result["style_mean"], results[0]["style_mean"], rtol=0, atol=1e-6)
    other = rng.random((1, 3, 96, 80), np.float32)
    replayed = [runner.infer({"style": other}) for _ in range(3)]
    assert cuda.counts["capture"] == 2 and len(cuda.graphs) == 1 and len(cuda.execs) == 1  # the old one freed
    assert not np.allclose(replayed[-1]["style_mean"], results[0]["style_mean"])
    runner.close()
    assert cuda.live() == {"device": 0, "host": 0, "streams": 0, "graphs": 0, "graph_execs": 0}


def test_sizes_outside_the_engine_profile_are_refused_before_running(cuda, fp16_graphs):
    from adainrt.errors import ModelError
    from adainrt.runtime.backends.tensorrt import TensorRTRunner
    from adainrt.runtime.backends.tensorrt.engine import cached_engine

    with TensorRTRunner(cached_engine(fp16_graphs / "adain_full_fp16.onnx")) as runner:
        feeds = {"content": np.zeros((1, 3, 2100, 64), np.float32), "style": np.zeros((1, 3, 64, 64), np.float32),
                 "alpha": np.ones(1, np.float32)}
        with pytest.raises(ModelError, match="outside the engine's profile"):
            runner.infer(feeds)
    assert cuda.counts["execute"] == 0
