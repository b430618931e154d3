"""The backend registry and the runner protocol: one module registers a backend, everything lists it."""

import importlib.util

import numpy as np
import pytest
from click.testing import CliRunner

from adainrt.errors import BackendUnavailable, ModelError
from adainrt.runtime import Runner, Stylizer, backend_names, choose, get_backend, open_graph, registered, statuses
from adainrt.runtime import backend as registry
from tests.helpers import synthetic_image


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
        # the Stylizer runs two sessions in turn: one's spinning threads must not hold the cores
        options = runner.session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        with pytest.raises(ModelError, match=r"inputs \['style'\] not given"):
            runner.infer({})
    with pytest.raises(ModelError, match="closed"):
        runner.infer({"style": rng.random((1, 3, 40, 48), np.float32)})
    stylizer = Stylizer(exported_dir, backend="ort-cpu")
    stylizer.close()
    with pytest.raises(ModelError, match="closed"):
        stylizer.stylize(synthetic_image(40, 40), synthetic_image(40, 40))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None,
                    reason="the tensorrt package is installed here; the GPU tests cover opening with it")
def test_tensorrt_without_its_package_refuses_to_open_naming_the_fix(exported_dir):
    """Without the tensorrt package, opening a graph with it names the fix instead of an ImportError.
    (Opening only prepared engines is tested in test_tensorrt_emulated.py.)"""
    with pytest.raises(BackendUnavailable, match=r"adainrt\[gpu\]"):
        get_backend("tensorrt").open(exported_dir / "adain_full.onnx", "fp16")


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


#: A backend module as a new one would be written: everything it knows (its cache folder, its library,
#: whether it can be the reference) declared in it. It runs onnxruntime's CPU runner on a copy of each
#: graph it keeps in its own cache folder, so its cache part really fills.
NEW_BACKEND_MODULE = '''
import shutil

from adainrt.runtime.backend import Backend, CacheFolder, register_backend
from adainrt.runtime.backends.onnxruntime import OrtRunner

CACHE = CacheFolder("copycat", "copies of the graphs the copycat backend ran; copied again on first use")


def open_copy(path, _precision):
    CACHE.path().mkdir(parents=True, exist_ok=True)
    copy = CACHE.path() / path.name
    shutil.copyfile(path, copy)
    return OrtRunner(copy, ["CPUExecutionProvider"])


register_backend(Backend(
    name="copycat", summary="onnxruntime's CPU runner on cached copies (a test's backend)", device="cpu",
    precisions=("fp32",), preference=95, probe=lambda: None, open=open_copy, cache=(CACHE,),
    libraries=lambda: {"copycat-lib": "7.1"},
))
'''


def test_a_backend_module_alone_shows_in_cache_info_bench_and_the_choices(tmp_path, monkeypatch, exported_dir):
    """Issue 27: a backend touches no file but its own module; the CLI, `cache`, `info` and `bench` ask
    the registry."""
    import json
    import sys

    from adainrt.cli import main

    registered()  # the shipped backends first, so the copy of the registry below holds them
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "copycat_backend.py").write_text(NEW_BACKEND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "copycat_backend", raising=False)
    __import__("copycat_backend")
    cli = CliRunner()

    assert "copycat" in cli.invoke(main, ["stylize", "--help"]).output  # the --backend choices
    bench = cli.invoke(main, ["bench", "--backend", "copycat", "--size", "32", "--runs", "1", "--warmup", "0",
                              "--model", str(exported_dir), "--json"])
    assert bench.exit_code == 0, bench.output
    rows = json.loads(bench.stdout)
    assert {(r["backend"], r["path"]) for r in rows} == {("copycat", "full"), ("copycat", "cached-style")}
    assert all(r["psnr_db"] is None or r["psnr_db"] > 60 for r in rows)  # the same graphs as the reference

    parts = {p["name"]: p for p in json.loads(cli.invoke(main, ["cache", "list", "--json"]).output)}
    assert parts["copycat"]["files"] == 4 and parts["copycat"]["bytes"] > 1_000_000  # full + split graphs
    assert parts["copycat"]["path"] == str(tmp_path / "cache" / "copycat") and parts["copycat"]["clearable"]
    info = json.loads(cli.invoke(main, ["info", "--json"]).output)
    assert info["copycat-lib"] == "7.1"
    listed = {entry["name"]: entry for entry in info["backends"]}["copycat"]
    assert listed["available"] and listed["precision"] == "fp32" and "a test's backend" in listed["reason"]
    cleared = cli.invoke(main, ["cache", "clear", "copycat"])
    assert cleared.exit_code == 0 and "removed copycat" in cleared.output
    assert not (tmp_path / "cache" / "copycat").exists()


def test_the_cli_help_imports_no_backend():
    """`--backend` choices are read when a command needs them, so `adainrt --help` loads no backend."""
    import subprocess
    import sys

    script = ("import sys\nfrom adainrt.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
              "print(sorted(m for m in sys.modules if m.startswith('adainrt.runtime.backends')))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_runner_implements_only_its_own_run_and_the_base_checks_feeds_and_state(tmp_path):
    """Polygraphy's template: infer checks the runner is open and fed, then calls _infer."""
    calls = []

    class Doubler(registry.RunnerBase):
        def __init__(self) -> None:
            self.path, self.input_names, self.output_names, self.metadata = tmp_path / "x", ["x"], ["y"], {}

        def _infer(self, feeds, keep):
            calls.append(sorted(feeds))
            return {"y": feeds["x"] * 2}

    runner = Doubler()
    assert runner.infer({"x": np.arange(3.0)})["y"].tolist() == [0.0, 2.0, 4.0]
    with pytest.raises(ModelError, match=r"inputs \['x'\] not given"):
        runner.infer({"z": np.zeros(1)})
    runner.close()
    runner.close()  # closing twice frees once
    with pytest.raises(ModelError, match="closed"):
        runner.infer({"x": np.zeros(1)})
    assert calls == [["x"]]


def test_torch_eager_is_a_runner_auto_never_picks(exported_dir, tmp_path):
    """torch runs a graph file from the graph's own weights (its initializers, by the module's parameter
    names), matching onnxruntime on every graph; auto passes it over, and an FP16 or a foreign graph is
    refused with the reason."""
    from adainrt.contract import graph_file
    from adainrt.export.onnx_export import example_inputs

    torch_backend = get_backend("torch")
    assert not torch_backend.automatic and torch_backend.why_not() is None
    assert choose("auto").name != "torch"
    for graph in ("full", "encoder", "style", "decoder"):
        feeds = example_inputs(graph, 48, 64)
        with open_graph(exported_dir / graph_file(graph), "torch") as eager, \
                open_graph(exported_dir / graph_file(graph), "ort-cpu") as ort:
            assert isinstance(eager, Runner) and eager.input_names == ort.input_names
            got, want = eager.infer(feeds), ort.infer(feeds)
        for name, value in want.items():
            assert got[name].shape == value.shape
            assert np.abs(got[name] - value).max() <= 1e-4 * max(1.0, float(np.abs(value).max())), (graph, name)
    with Stylizer(exported_dir, backend="torch") as eager, Stylizer(exported_dir, backend="ort-cpu") as ort:
        photo, style = synthetic_image(40, 48), synthetic_image(40, 40, seed=3)
        difference = np.asarray(eager.stylize(photo, style), int) - np.asarray(ort.stylize(photo, style), int)
    assert np.abs(difference).max() <= 1
    import onnx

    relabelled = onnx.load(str(exported_dir / graph_file("decoder")))
    next(p for p in relabelled.metadata_props if p.key == "precision").value = "fp16"
    onnx.save(relabelled, str(tmp_path / "fp16.onnx"))
    with pytest.raises(ModelError, match="FP32 graphs"):
        open_graph(tmp_path / "fp16.onnx", "torch")
    foreign = tmp_path / "foreign.onnx"
    foreign.write_bytes((exported_dir / graph_file("decoder")).read_bytes()[:1000])
    with pytest.raises(ModelError, match="foreign.onnx"):
        open_graph(foreign, "torch")
