"""ONNX export: checker, dynamic sizes, parity with PyTorch at odd sizes, metadata, alpha."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from adainrt.contract import GRAPHS, graph_file
from adainrt.errors import OutputExists
from adainrt.export import export_model
from adainrt.export.onnx_export import OPSET, example_inputs

PARITY_SIZES = [(256, 256), (512, 384), (333, 517), (37, 45)]


@pytest.fixture(scope="module")
def sessions(exported_dir):
    return {g: ort.InferenceSession(str(exported_dir / graph_file(g)), providers=["CPUExecutionProvider"])
            for g in GRAPHS}


@pytest.mark.parametrize("height,width", PARITY_SIZES)
def test_full_graph_matches_pytorch(sessions, model, height, width):
    feeds = example_inputs("full", height, width, seed=height + width)
    with torch.no_grad():
        expected = model[0](*(torch.from_numpy(v) for v in feeds.values())).numpy()
    got = sessions["full"].run(None, feeds)[0]
    assert got.shape == (1, 3, height, width)
    value_range = expected.max() - expected.min()
    assert np.abs(got - expected).max() <= 1e-4 * value_range


@pytest.mark.parametrize("height,width", PARITY_SIZES)
def test_split_graphs_compose_to_the_full_graph(sessions, height, width):
    feeds = example_inputs("full", height, width, seed=3)
    full = sessions["full"].run(None, feeds)[0]
    features = sessions["encoder"].run(None, {"content": feeds["content"]})[0]
    mean, std = sessions["style"].run(None, {"style": feeds["style"]})
    assert features.shape == (1, 512, -(-height // 8), -(-width // 8)) and mean.shape == (1, 512, 1, 1)
    image = sessions["decoder"].run(None, {"content_features": features, "style_mean": mean,
                                           "style_std": std, "alpha": feeds["alpha"]})[0]
    image = image[..., :height, :width]
    assert np.abs(image - full).max() <= 1e-4 * (full.max() - full.min())


def test_alpha_zero_gives_decoder_of_encoder(sessions, model):
    feeds = example_inputs("full", 64, 80, seed=5)
    feeds["alpha"] = np.zeros(1, np.float32)
    got = sessions["full"].run(None, feeds)[0]
    with torch.no_grad():
        expected = model[0].decoder(model[0].encoder(torch.from_numpy(feeds["content"]))).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * (expected.max() - expected.min())


def test_batch_of_contents(sessions):
    feeds = example_inputs("full", 48, 48)
    single = sessions["full"].run(None, feeds)[0]
    feeds["content"] = np.concatenate([feeds["content"]] * 3)
    batch = sessions["full"].run(None, feeds)[0]
    assert batch.shape == (3, 3, 48, 48)
    np.testing.assert_allclose(batch[2], single[0], atol=1e-6)


def test_graphs_are_checked_dynamic_and_carry_provenance(exported_dir, model):
    proto = onnx.load(str(exported_dir / "adain_full.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {OPSET}
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in list(proto.graph.input) + list(proto.graph.output)}
    assert dims["content"] == ["batch", 3, "content_height", "content_width"]
    assert dims["style"] == [1, 3, "style_height", "style_width"]
    assert dims["image"] == ["batch", 3, "content_height", "content_width"]
    assert dims["alpha"] == [1]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["encoder_hash"] == model[1]["encoder_hash"] and meta["decoder_hash"] == model[1]["decoder_hash"]
    assert meta["adainrt_graph"] == "full" and "[0, 1]" in meta["value_range"] and "RGB" in meta["preprocessing"]
    assert "InstanceNormalization" not in {n.op_type for n in proto.graph.node}  # TensorRT wants explicit reductions


def test_existing_graphs_are_not_overwritten(exported_dir, model):
    before = (exported_dir / "adain_full.onnx").stat().st_mtime_ns
    with pytest.raises(OutputExists, match="adain_full.onnx already exist"):
        export_model(model[0], exported_dir, "full", model[1])
    assert (exported_dir / "adain_full.onnx").stat().st_mtime_ns == before


@pytest.mark.slow
def test_export_reports_its_own_verification(tmp_path, model):
    results = export_model(model[0], tmp_path, "split", model[1], verify_sizes=((40, 56),))
    assert [r.graph for r in results] == ["encoder", "style", "decoder"]
    for r in results:
        assert r.max_abs_error["40x56"] <= 1e-4 * max(r.output_range["40x56"], 1e-6)


def test_triton_repository_matches_the_graphs(tmp_path, exported_dir):
    """Each config.pbtxt parses as Triton's ModelConfig, declares the tensors onnxruntime sees (the batch
    dimension left out where Triton batches), and asks for TensorRT in FP16."""
    from google.protobuf import text_format

    from adainrt.export.triton import write_triton_repository

    model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2",
                                           reason="tritonclient is not installed (pip install tritonclient[grpc])")
    files = sorted(exported_dir.glob("adain_*.onnx"))
    models = write_triton_repository(files, tmp_path / "repo")
    assert [m.name for m in models] == [f.stem for f in files]
    for model in models:
        config = text_format.Parse((model / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert config.name == model.name and config.platform == "onnxruntime_onnx"
        accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
        assert accelerator.name == "tensorrt"
        assert accelerator.parameters["precision_mode"] == ("FP16" if model.name.endswith("_fp16") else "FP32")
        batched = config.max_batch_size > 0
        assert batched == (model.name in ("adain_encoder", "adain_decoder"))
        assert config.HasField("dynamic_batching") == batched
        session = ort.InferenceSession(str(model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
        declared = {t.name: list(t.reshape.shape) if t.HasField("reshape") else list(t.dims)
                    for t in [*config.input, *config.output]}
        assert all(list(t.dims) for t in [*config.input, *config.output])  # Triton wants dims non-empty
        if model.name == "adain_decoder":  # alpha is the batch alone: dims [1] reshaped to [] (Triton's guide)
            alpha = next(t for t in config.input if t.name == "alpha")
            assert list(alpha.dims) == [1] and alpha.HasField("reshape") and list(alpha.reshape.shape) == []
        for value in session.get_inputs() + session.get_outputs():
            shape = [d if isinstance(d, int) else -1 for d in value.shape]
            assert declared[value.name] == (shape[1:] if batched else shape), value.name
    with pytest.raises(OutputExists, match="model.onnx already exists"):
        write_triton_repository(files[:1], tmp_path / "repo")


def test_decoder_takes_a_style_and_alpha_per_batch_item(sessions):
    """Requests with different styles and alphas can share one decoder run: item k gets style k, alpha k."""
    rng = np.random.default_rng(5)
    features = rng.random((2, 512, 6, 7), np.float32) * 2
    means, stds = rng.random((2, 512, 1, 1), np.float32), rng.random((2, 512, 1, 1), np.float32) + 0.1
    alpha = np.array([0.8, 0.3], np.float32)
    batch = sessions["decoder"].run(None, {"content_features": features, "style_mean": means, "style_std": stds,
                                           "alpha": alpha})[0]
    for k in range(2):
        one = sessions["decoder"].run(None, {"content_features": features[k:k + 1], "style_mean": means[k:k + 1],
                                             "style_std": stds[k:k + 1], "alpha": alpha[k:k + 1]})[0]
        np.testing.assert_allclose(batch[k:k + 1], one, atol=1e-5)


def test_export_refuses_a_filled_triton_repository_before_exporting(tmp_path):
    from click.testing import CliRunner

    from adainrt.cli import main

    (tmp_path / "repo" / "adain_full" / "1").mkdir(parents=True)
    (tmp_path / "repo" / "adain_full" / "1" / "model.onnx").write_bytes(b"an earlier model")
    result = CliRunner().invoke(main, ["export", "--output", str(tmp_path / "graphs"), "--form", "full",
                                       "--triton-repo", str(tmp_path / "repo")])
    assert result.exit_code == 1 and "adain_full/1/model.onnx already exists" in result.output
    assert not (tmp_path / "graphs").exists()  # refused before minutes of export


def test_export_verifies_on_the_registry_reference_openvino_where_onnxruntime_cannot_run(model, tmp_path,
                                                                                       monkeypatch):
    """Verification runs the graph through the registry's FP32 reference runner: where onnxruntime
    cannot run, that is OpenVINO at f32, and the graphs still match PyTorch within the contract."""
    import dataclasses

    from adainrt.runtime import backend as registry

    ort_cpu = registry.get_backend("ort-cpu")
    monkeypatch.setitem(registry._REGISTRY, "ort-cpu",
                        dataclasses.replace(ort_cpu, probe=lambda: "onnxruntime is blocked in this test"))
    assert registry.reference_backend().name == "openvino"
    results = export_model(model[0], tmp_path / "graphs", "split", model[1], verify_sizes=((64, 80),))
    assert [r.graph for r in results] == ["encoder", "style", "decoder"]
    for result in results:
        bound = GRAPHS[result.graph].tolerance.fp32_rel * result.output_range["64x80"]
        assert 0 < result.max_abs_error["64x80"] <= bound, result
