"""A Triton Inference Server model repository from exported graphs.

Triton wants ``REPO/<model>/config.pbtxt`` beside ``REPO/<model>/1/model.onnx``. The config
is written from the ONNX file itself (names, element types, shapes with -1 for dynamic
dimensions), so it always matches the graph it serves. ``max_batch_size: 0``: our graphs carry
their batch dimension explicitly (content batches; one style per call).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from adainrt.errors import ModelError
from adainrt.fileio import atomic_path, atomic_write_bytes

#: ONNX TensorProto element type -> Triton data type.
TRITON_TYPES = {1: "TYPE_FP32", 10: "TYPE_FP16", 7: "TYPE_INT64", 6: "TYPE_INT32"}


def _tensor_entries(values) -> str:
    entries = []
    for value in values:
        tensor = value.type.tensor_type
        if tensor.elem_type not in TRITON_TYPES:
            raise ModelError(f"tensor {value.name}: ONNX element type {tensor.elem_type} has no Triton type here")
        dims = ", ".join(str(d.dim_value) if d.HasField("dim_value") else "-1" for d in tensor.shape.dim)
        entries.append(f'  {{\n    name: "{value.name}"\n    data_type: {TRITON_TYPES[tensor.elem_type]}\n'
                       f"    dims: [ {dims} ]\n  }}")
    return ",\n".join(entries)


def triton_config(onnx_path: str | os.PathLike, name: str) -> str:
    """config.pbtxt (protobuf text format) for one ONNX graph served by onnxruntime in Triton."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
            f"input [\n{_tensor_entries(inputs)}\n]\noutput [\n{_tensor_entries(graph.output)}\n]\n")


def write_triton_repository(onnx_files: list[Path], repo: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """One Triton model per graph, named after the file (adain_full, adain_decoder_fp16, ...)."""
    repo = Path(repo)
    written = []
    for onnx_path in onnx_files:
        model_dir = repo / onnx_path.stem
        target = model_dir / "1" / "model.onnx"
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass --overwrite to replace it")
        config = triton_config(onnx_path, onnx_path.stem)
        with atomic_path(target, overwrite=True) as tmp:
            shutil.copyfile(onnx_path, tmp)
        atomic_write_bytes(model_dir / "config.pbtxt", config.encode())
        written.append(model_dir)
    return written
