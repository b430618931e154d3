"""The FP16 ONNX variant: FP16 weights and activations, AdaIN statistics in FP32, FP32 I/O."""

import shutil

import numpy as np
import onnx
import pytest

from adainrt.contract import graph_file
from adainrt.export import export_model
from adainrt.images import bundled_sample, load_image, resize_smaller_side
from adainrt.runtime import Stylizer
from tests.helpers import psnr


@pytest.fixture(scope="module")
def fp16_dir(exported_dir, model, tmp_path_factory):
    """A copy of the session's FP32 graphs with the FP16 split graphs added (the shared folder stays as it is)."""
    folder = tmp_path_factory.mktemp("graphs-fp16") / "graphs"
    shutil.copytree(exported_dir, folder)
    export_model(model[0], folder, "split", model[1], precision="fp16", verify_sizes=((64, 64),))
    return folder


def test_fp16_graph_is_typed_as_tensorrt_strong_typing_needs(fp16_dir):
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(fp16_dir / graph_file("decoder", "fp16"))))
    fp16, fp32 = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    assert all(i.type.tensor_type.elem_type == fp32 for i in list(proto.graph.input) + list(proto.graph.output))
    weights = [t for t in proto.graph.initializer if len(t.dims) == 4]
    assert weights and all(t.data_type == fp16 for t in weights)
    types = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    types.update({t.name: t.data_type for t in proto.graph.initializer})
    reductions = [n for n in proto.graph.node if n.op_type in ("ReduceMean", "Sqrt")]
    assert reductions and all(types.get(n.input[0]) == fp32 for n in reductions)  # statistics in FP32
    assert any(n.op_type == "Cast" for n in proto.graph.node)
    assert {p.key: p.value for p in proto.metadata_props}["precision"].startswith("fp16")


def test_fp16_matches_fp32_on_a_real_photo(fp16_dir):
    photo = resize_smaller_side(load_image(bundled_sample("astronaut")), 256)
    style = resize_smaller_side(load_image(bundled_sample("strokes")), 256)
    fp32 = Stylizer(fp16_dir, backend="ort-cpu").stylize(np.asarray(photo) / 255.0, style)
    fp16 = Stylizer(fp16_dir, backend="ort-cpu", precision="fp16").stylize(np.asarray(photo) / 255.0, style)
    assert fp16.shape == fp32.shape
    assert psnr(fp16, fp32) >= 40.0


def test_fp16_on_real_photos_and_paintings(fp16_dir, shared_data):
    fp32_stylizer = Stylizer(fp16_dir, backend="ort-cpu")
    fp16_stylizer = Stylizer(fp16_dir, backend="ort-cpu", precision="fp16")
    for content, style in [("adain__cornell.jpg", "adain__la_muse.jpg"), ("adain__brad_pitt.jpg",
                                                                         "adain__picasso_seated_nude_hr.jpg")]:
        photo = resize_smaller_side(load_image(shared_data / "content" / content), 256)
        painting = resize_smaller_side(load_image(shared_data / "style" / style), 256)
        a = fp32_stylizer.stylize(np.asarray(photo) / 255.0, painting)
        b = fp16_stylizer.stylize(np.asarray(photo) / 255.0, painting)
        assert psnr(b, a) >= 40.0, (content, style)
