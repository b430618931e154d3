"""A Triton Inference Server model repository from exported graphs.

Triton wants ``REPO/<model>/config.pbtxt`` beside ``REPO/<model>/1/model.onnx``. The config
is written from the graph contract (names, element types, shapes with -1 for symbolic
dimensions); the tests check it against onnxruntime's view of each exported file.
The encoder and the decoder, whose inputs all carry the batch first (the decoder takes a style and
an alpha per item), get dynamic batching: requests with different styles share a decoder run. The
others take one style per call, so they keep ``max_batch_size: 0``. Every model asks for
onnxruntime's TensorRT accelerator (FP16 for the FP16 graphs).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from adainrt.contract import GRAPHS, TensorSpec, graph_contracts, graph_metadata, read_graph, recorded_channels
from adainrt.errors import ModelError
from adainrt.fileio import atomic_path, atomic_write_bytes, check_folder_path, refuse_existing

#: Contract element type -> Triton data type.
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "int32": "TYPE_INT32"}


#: Graphs whose every input carries the batch first, so Triton may batch requests (max_batch_size > 0):
#: the encoder, and the decoder (statistics and alpha per item). The others take one style per call.
BATCHABLE = tuple(name for name, contract in GRAPHS.items()
                  if all(spec.shape[0] == "batch" for spec in contract.inputs))
MAX_BATCH = 8
#: onnxruntime in Triton hands the graph to TensorRT (falling back to CUDA where it cannot): in FP16
#: for the FP16 graphs only; an FP32 graph stays FP32 (its AdaIN sums of squares exceed FP16's range).
TENSORRT_ACCELERATOR = """optimization {{
  execution_accelerators {{
    gpu_execution_accelerator : [ {{
      name : "tensorrt"
      parameters {{ key: "precision_mode" value: "{precision}" }}
      parameters {{ key: "max_workspace_size_bytes" value: "4294967296" }}
      parameters {{ key: "trt_engine_cache_enable" value: "1" }}
    }} ]
  }}
}}
"""


def _tensor_entries(specs: tuple[TensorSpec, ...], batched: bool) -> str:
    """Triton's view of each tensor: batched models leave the batch out of ``dims``; a tensor that is
    the batch alone (the decoder's alpha) is declared ``dims: [ 1 ]`` reshaped to ``[ ]``, as Triton's
    model configuration guide prescribes for batch-only inputs."""
    entries = []
    for spec in specs:
        shape = spec.shape[1:] if batched else spec.shape
        dims = ", ".join(str(d) if isinstance(d, int) else "-1" for d in shape) if shape else "1"
        reshape = "" if shape else "\n    reshape: { shape: [ ] }"
        entries.append(f'  {{\n    name: "{spec.name}"\n    data_type: {TRITON_TYPES[spec.dtype]}\n'
                       f"    dims: [ {dims} ]{reshape}\n  }}")
    return ",\n".join(entries)


def graph_of(onnx_path: str | os.PathLike) -> tuple[str, int]:
    """Which contract graph an exported file is, and its network's relu4_1 channels, from its adainrt
    metadata (graphs exported before variants record no channels: full's)."""
    meta = graph_metadata(read_graph(onnx_path))
    graph = meta.get("adainrt_graph")
    if graph not in GRAPHS:
        raise ModelError(f"{onnx_path}: not a graph exported by adainrt (no adainrt_graph metadata); "
                         "export it with `adainrt export`")
    return graph, recorded_channels(meta)


def triton_config(onnx_path: str | os.PathLike, name: str) -> str:
    """config.pbtxt (protobuf text format) for one exported graph served by onnxruntime in Triton,
    its tensors as the graph contract declares them, TensorRT FP16 as the GPU accelerator, and
    dynamic batching for the graphs whose inputs all carry the batch."""
    graph, channels = graph_of(onnx_path)
    contract = graph_contracts(channels)[graph]
    batched = graph in BATCHABLE
    head = f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {MAX_BATCH if batched else 0}\n'
    body = (f"input [\n{_tensor_entries(contract.inputs, batched)}\n]\n"
            f"output [\n{_tensor_entries(contract.outputs, batched)}\n]\n")
    batching = "dynamic_batching { }\n" if batched else ""
    fp16 = Path(onnx_path).stem.endswith("_fp16")
    return head + body + batching + TENSORRT_ACCELERATOR.format(precision="FP16" if fp16 else "FP32")


def check_triton_targets(models: list[str], repo: str | os.PathLike, overwrite: bool = False) -> None:
    """Refuse, before any work, models already in the repository (unless replacing them is allowed)."""
    check_folder_path(Path(repo))
    if not overwrite:
        refuse_existing(Path(repo) / name / "1" / "model.onnx" for name in models)


def write_triton_repository(onnx_files: list[Path], repo: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """One Triton model per graph, named after the file (adain_full, adain_decoder_fp16, ...)."""
    repo = Path(repo)
    check_triton_targets([p.stem for p in onnx_files], repo, overwrite)
    written = []
    for onnx_path in onnx_files:
        model_dir = repo / onnx_path.stem
        target = model_dir / "1" / "model.onnx"
        config = triton_config(onnx_path, onnx_path.stem)
        with atomic_path(target, overwrite=True) as tmp:
            shutil.copyfile(onnx_path, tmp)
        atomic_write_bytes(model_dir / "config.pbtxt", config.encode())
        written.append(model_dir)
    return written
