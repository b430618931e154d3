"""The backend registry and the runner protocol: one module registers a backend, everything lists it."""

import numpy as np
import pytest
from click.testing import CliRunner

from adainrt.errors import BackendUnavailable, ModelError
from adainrt.runtime import Runner, Stylizer, backend_names, choose, get_backend, open_graph, registered, statuses
from adainrt.runtime import backend as registry
from tests.conftest import synthetic_image


@pytest.fixture()
def extra_backend():
    """A backend registered the way a new module would: onnxruntime's CPU runner under a new name,
    preferred above every other. Removed again afterwards."""
    from adainrt.runtime.backends.onnxruntime import OrtRunner

    backend = registry.Backend(name="test-cpu", summary="a backend added by a test", device="cpu",
                               precisions=("fp32",), preference=0, probe=lambda: None,
                               open=lambda path, _precision: OrtRunner(path, ["CPUExecutionProvider"]))
    registry.register_backend(backend)
    yield backend
    registry._REGISTRY.pop("test-cpu")


def test_every_backend_module_registers_itself():
    names = backend_names()
    assert {"tensorrt", "ort-trt", "ort-cuda", "ort-cpu"} <= set(names)
    assert names.index("tensorrt") < names.index("ort-trt") < names.index("ort-cuda") < names.index("ort-cpu")
    assert [b.name for b in registered()] == names
    for status in statuses():
        assert status.reason and (status.available == (get_backend(status.name).why_not() is None))
    assert get_backend("tensorrt").precisions == ("fp16",)


def test_a_registered_backend_is_chosen_listed_and_runs(extra_backend, exported_dir):
    from adainrt.cli import main

    assert choose("auto").name == "test-cpu" and "test-cpu" in backend_names()
    with Stylizer(exported_dir, backend="auto") as stylizer:
        assert stylizer.backend == "test-cpu" and stylizer.precision == "fp32"
        out = stylizer.stylize(synthetic_image(40, 48), synthetic_image(40, 40, seed=3))
    with Stylizer(exported_dir, backend="ort-cpu") as reference:
        expected = reference.stylize(synthetic_image(40, 48), synthetic_image(40, 40, seed=3))
    assert np.abs(np.asarray(out, int) - np.asarray(expected, int)).max() <= 1
    report = CliRunner().invoke(main, ["info", "--json"]).output
    assert '"name": "test-cpu"' in report
    with pytest.raises(BackendUnavailable, match="runs fp32, not fp16"):
        Stylizer(exported_dir, backend="test-cpu", precision="fp16")


def test_an_unavailable_backend_says_why_and_auto_passes_it_over(exported_dir):
    unusable = registry.Backend(name="test-never", summary="never here", device="cpu", precisions=("fp32",),
                                preference=-1, probe=lambda: "needs hardware this test machine lacks",
                                open=lambda path, _precision: pytest.fail("opened an unusable backend"))
    registry.register_backend(unusable)
    try:
        assert choose("auto").name != "test-never" and "test-never" in choose("auto").reason
        with pytest.raises(BackendUnavailable, match="test-never: needs hardware this test machine lacks"):
            Stylizer(exported_dir, backend="test-never")
    finally:
        registry._REGISTRY.pop("test-never")


def test_runner_returns_outputs_by_name_and_frees_on_close(exported_dir):
    rng = np.random.default_rng(0)
    with open_graph(exported_dir / "adain_style.onnx", "ort-cpu") as runner:
        assert isinstance(runner, Runner)
        out = runner.infer({"style": rng.random((1, 3, 40, 48), np.float32)})
        assert set(out) == {"style_mean", "style_std"} and out["style_mean"].shape == (1, 512, 1, 1)
        with pytest.raises(ModelError, match=r"inputs \['style'\] not given"):
            runner.infer({})
    with pytest.raises(ModelError, match="closed"):
        runner.infer({"style": rng.random((1, 3, 40, 48), np.float32)})
    stylizer = Stylizer(exported_dir, backend="ort-cpu")
    stylizer.close()
    with pytest.raises(ModelError, match="closed"):
        stylizer.stylize(synthetic_image(40, 40), synthetic_image(40, 40))


def test_tensorrt_opens_only_prepared_engines(exported_dir):
    """Building happens in prepare (explicit, cached), never when a runner is opened."""
    backend = get_backend("tensorrt")
    assert backend.prepare is not None
    if backend.why_not() is not None:
        with pytest.raises(BackendUnavailable):
            backend.open(exported_dir / "adain_full.onnx", "fp16")


def test_content_beyond_a_backends_largest_side_is_tiled_to_fit(exported_dir):
    """A backend whose engines take at most 256 px a side (as TensorRT profiles bound them) still
    stylizes a 200x300 photo: in tiles that fit, agreeing with the untiled result."""
    from adainrt.runtime.backends.onnxruntime import OrtRunner

    seen = []

    def open_bounded(path, _precision):
        runner = OrtRunner(path, ["CPUExecutionProvider"])
        infer = runner.infer

        def checked(feeds, keep=()):
            seen.extend(max(v.shape[-2:]) * (8 if k == "content_features" else 1) for k, v in feeds.items()
                        if k in ("content", "content_features"))
            return infer(feeds, keep)

        runner.infer = checked
        return runner

    registry.register_backend(registry.Backend(name="test-256", summary="at most 256 px a side", device="cpu",
                                               precisions=("fp32",), preference=100, probe=lambda: None,
                                               open=open_bounded, max_side=256))
    try:
        content, style = synthetic_image(200, 300, seed=5), synthetic_image(64, 64, seed=6)
        with Stylizer(exported_dir, backend="test-256") as bounded, Stylizer(exported_dir, backend="ort-cpu") as whole:
            got = np.asarray(bounded.stylize(content, style), np.float32)
            expected = np.asarray(whole.stylize(content, style), np.float32)
    finally:
        registry._REGISTRY.pop("test-256")
    assert got.shape == expected.shape == (200, 300, 3)
    assert max(seen) <= 256 and np.abs(got - expected).max() <= 2
