"""The graph contract and the manifest: export writes what the graphs are, loading refuses what is not."""

import json
import shutil

import onnxruntime as ort
import pytest

from adainrt.contract import FORMS, GRAPHS, MANIFEST, concrete_shape, feature_size, graph_file, verified_graphs
from adainrt.errors import ModelError
from adainrt.runtime import Stylizer


@pytest.fixture()
def folder_copy(exported_dir, tmp_path):
    """A private copy of the session's exported graphs, free to damage."""
    target = tmp_path / "graphs"
    shutil.copytree(exported_dir, target)
    return target


def test_manifest_describes_every_exported_graph_as_onnxruntime_sees_it(exported_dir, encoder_meta):
    manifest = json.loads((exported_dir / MANIFEST).read_text())
    assert manifest["encoder_hash"] == encoder_meta["weights_hash"] and manifest["decoder_hash"]
    assert manifest["preprocessing"]["pad_multiple"] == 8 and manifest["preprocessing"]["color_order"] == "RGB"
    assert set(manifest["graphs"]) == {graph_file(g) for g in GRAPHS}
    for name, entry in manifest["graphs"].items():
        session = ort.InferenceSession(str(exported_dir / name), providers=["CPUExecutionProvider"])
        for declared, actual in [(entry["inputs"], session.get_inputs()), (entry["outputs"], session.get_outputs())]:
            assert [t["name"] for t in declared] == [v.name for v in actual]
            for tensor, value in zip(declared, actual):
                assert tensor["dtype"] == "float32" and value.type == "tensor(float)"
                assert tensor["shape"] == value.shape, (name, tensor["name"], value.shape)
        metadata = session.get_modelmeta().custom_metadata_map
        assert metadata["adainrt_graph"] == entry["graph"] and metadata["encoder_hash"] == manifest["encoder_hash"]


def test_contract_shapes_follow_the_padding_rule():
    assert feature_size(37, 45) == (5, 6) and feature_size(256, 512) == (32, 64)
    decoder = GRAPHS["decoder"]
    assert concrete_shape(decoder.tensor("content_features"), (37, 45), batch=2) == (2, 512, 5, 6)
    assert concrete_shape(decoder.tensor("image"), (37, 45)) == (1, 3, 40, 48)
    assert concrete_shape(GRAPHS["style"].tensor("style"), (64, 64), (100, 120)) == (1, 3, 100, 120)


def test_a_graph_changed_after_export_is_refused(folder_copy):
    verified_graphs(folder_copy, FORMS["split"], "fp32")  # as exported: accepted
    decoder = folder_copy / graph_file("decoder")
    shutil.copy(folder_copy / graph_file("encoder"), decoder)  # another model under the decoder's name
    with pytest.raises(ModelError, match="adain_decoder.onnx is not the graph its manifest.json describes"):
        Stylizer(folder_copy, backend="ort-cpu")


def test_a_folder_without_manifest_or_without_the_graphs_is_refused(folder_copy, tmp_path):
    with pytest.raises(ModelError, match="has no adain_encoder_fp16.onnx.*its manifest.json lists.*--precision fp16"):
        Stylizer(folder_copy, backend="ort-cpu", precision="fp16")
    (folder_copy / MANIFEST).write_text("{not json")
    with pytest.raises(ModelError, match="manifest.json: unreadable"):
        Stylizer(folder_copy, backend="ort-cpu")
    (folder_copy / MANIFEST).unlink()
    with pytest.raises(ModelError, match="graphs without a manifest.json .*older adainrt.*--overwrite"):
        Stylizer(folder_copy, backend="ort-cpu")
    with pytest.raises(ModelError, match="no such model folder"):
        Stylizer(tmp_path / "absent", backend="ort-cpu")


@pytest.mark.slow
def test_export_of_other_weights_starts_a_new_manifest(folder_copy, model):
    """Graphs of the old weights left in the folder are no longer listed, so they cannot be mixed in."""
    from adainrt.export import export_model

    torch_model, provenance = model
    other = {**provenance, "decoder_hash": "0" * 16}
    export_model(torch_model, folder_copy, "full", other, verify_sizes=((40, 40),), overwrite=True)
    manifest = json.loads((folder_copy / MANIFEST).read_text())
    assert manifest["decoder_hash"] == "0" * 16 and set(manifest["graphs"]) == {graph_file("full")}
    with pytest.raises(ModelError, match="no adain_encoder.onnx"):
        Stylizer(folder_copy, backend="ort-cpu")
