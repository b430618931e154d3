"""A Triton Inference Server model repository from exported graphs.

Triton wants ``REPO/<model>/config.pbtxt`` beside ``REPO/<model>/1/model.onnx``. The config
is written from the graph contract (names, element types, shapes with -1 for symbolic
dimensions); the tests check it against onnxruntime's view of each exported file.
``max_batch_size: 0``: our graphs carry their batch dimension explicitly (content batches;
one style per call).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from adainrt.contract import GRAPHS, TensorSpec
from adainrt.errors import ModelError, OutputExists
from adainrt.fileio import atomic_path, atomic_write_bytes

#: Contract element type -> Triton data type.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}


def _tensor_entries(specs: tuple[TensorSpec, ...]) -> str:
    entries = []
    for spec in specs:
        dims = ", ".join(str(d) if isinstance(d, int) else "-1" for d in spec.shape)
        entries.append(f'  {{\n    name: "{spec.name}"\n    data_type: {TRITON_TYPES[spec.dtype]}\n'
                       f"    dims: [ {dims} ]\n  }}")
    return ",\n".join(entries)


def graph_of(onnx_path: str | os.PathLike) -> str:
    """Which contract graph an exported file is, from its adainrt metadata."""
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path), load_external_data=False).metadata_props}
    graph = meta.get("adainrt_graph")
    if graph not in GRAPHS:
        raise ModelError(f"{onnx_path}: not a graph exported by adainrt (no adainrt_graph metadata); "
                         "export it with `adainrt export`")
    return graph


def triton_config(onnx_path: str | os.PathLike, name: str) -> str:
    """config.pbtxt (protobuf text format) for one exported graph served by onnxruntime in Triton,
    its tensors as the graph contract declares them."""
    contract = GRAPHS[graph_of(onnx_path)]
    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
            f"input [\n{_tensor_entries(contract.inputs)}\n]\noutput [\n{_tensor_entries(contract.outputs)}\n]\n")


def write_triton_repository(onnx_files: list[Path], repo: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """One Triton model per graph, named after the file (adain_full, adain_decoder_fp16, ...)."""
    repo = Path(repo)
    written = []
    for onnx_path in onnx_files:
        model_dir = repo / onnx_path.stem
        target = model_dir / "1" / "model.onnx"
        if target.exists() and not overwrite:
            raise OutputExists(target)
        config = triton_config(onnx_path, onnx_path.stem)
        with atomic_path(target, overwrite=True) as tmp:
            shutil.copyfile(onnx_path, tmp)
        atomic_write_bytes(model_dir / "config.pbtxt", config.encode())
        written.append(model_dir)
    return written
