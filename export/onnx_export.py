"""Export the AdaIN network to ONNX: one ``full`` graph or the three ``split`` graphs.

Every graph has dynamic H and W (content and style independent), alpha as an input, opset 18,
passes ``onnx.checker``, is verified against PyTorch in onnxruntime right after export, and
carries its provenance in ``metadata_props``. Files are written atomically.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from adainrt import __version__
from adainrt.errors import ModelError
from adainrt.fileio import atomic_path
from adainrt.network import AdaINModel
from adainrt.runtime.stylizer import FORM_GRAPHS, GRAPH_NAMES, PRECISIONS, graph_file
from adainrt.spec import MIN_SIZE, SIZE_MULTIPLE
from adainrt.weights import PREPROCESSING

OPSET = 18
#: Largest H or W the exported graphs admit (a bound torch.export wants; TensorRT profiles narrow it).
MAX_SIZE = 16384
FORMS = ("full", "split")


@dataclass(frozen=True)
class GraphSpec:
    """One exported graph: its file stem, wrapper module, tensor names and dynamic axes."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    # input name -> {axis: dim name}; output dims get names through ``output_dims``.
    dynamic: dict[str, dict[int, str]]
    output_dims: dict[str, dict[int, str]] = field(default_factory=dict)
    note: str = ""


SPECS: dict[str, GraphSpec] = {
    "full": GraphSpec(
        GRAPH_NAMES["full"], ("content", "style", "alpha"), ("image",),
        {"content": {0: "batch", 2: "content_height", 3: "content_width"},
         "style": {2: "style_height", 3: "style_width"}},
        {"image": {0: "batch", 2: "content_height", 3: "content_width"}},
        "image = T(content, style, alpha), same size as content",
    ),
    "encoder": GraphSpec(
        GRAPH_NAMES["encoder"], ("content",), ("content_features",),
        {"content": {0: "batch", 2: "content_height", 3: "content_width"}},
        {"content_features": {0: "batch", 2: "feature_height", 3: "feature_width"}},
        "relu4_1 of content reflect-padded (bottom, right) to a multiple of 8",
    ),
    "style": GraphSpec(
        GRAPH_NAMES["style"], ("style",), ("style_mean", "style_std"),
        {"style": {2: "style_height", 3: "style_width"}},
        {},
        "per-channel mean and std (unbiased, eps 1e-5) of relu4_1 of style, shape 1x512x1x1",
    ),
    "decoder": GraphSpec(
        GRAPH_NAMES["decoder"], ("content_features", "style_mean", "style_std", "alpha"), ("image",),
        {"content_features": {0: "batch", 2: "feature_height", 3: "feature_width"}},
        {"image": {0: "batch", 2: "padded_height", 3: "padded_width"}},
        "image of 8x the feature size: crop to [:content_height, :content_width]",
    ),
}


class _Graph(nn.Module):
    """One exported graph's view of the model, in FP32 or FP16.

    FP16 graphs keep FP32 inputs and outputs (explicit Casts at the edges) and, because
    ``mean_std`` computes in FP32, FP32 AdaIN statistics: the explicitly typed graph a
    strongly typed TensorRT network needs, and the same I/O as the FP32 graphs.
    """

    def __init__(self, model: AdaINModel, precision: str = "fp32"):
        super().__init__()
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = copy.deepcopy(model).to(self.dtype) if precision == "fp16" else model

    def _in(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(self.dtype) for t in tensors]


class _Full(_Graph):
    def forward(self, content, style, alpha):
        return self.model(*self._in(content, style, alpha)).float()


class _Encoder(_Graph):
    def forward(self, content):
        return self.model.encode_content(*self._in(content)).float()


class _Style(_Graph):
    def forward(self, style):
        mean, std = self.model.style_stats(*self._in(style))
        return mean.float(), std.float()


class _Decoder(_Graph):
    def forward(self, content_features, style_mean, style_std, alpha):
        return self.model.decode(*self._in(content_features, style_mean, style_std, alpha)).float()


def _wrap(graph: str, model: AdaINModel, precision: str = "fp32") -> nn.Module:
    return {"full": _Full, "encoder": _Encoder, "style": _Style, "decoder": _Decoder}[graph](model, precision)


def example_inputs(graph: str, height: int, width: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of one graph at a content size (style a different size, alpha 0.7)."""
    rng = np.random.default_rng(seed)
    ph, pw = (-(-height // SIZE_MULTIPLE), -(-width // SIZE_MULTIPLE))

    def rand(*shape: int) -> np.ndarray:
        return rng.random(shape, dtype=np.float32)

    style_hw = (height + 13, width + 21)
    values = {
        "content": rand(1, 3, height, width),
        "style": rand(1, 3, *style_hw),
        "alpha": np.array([0.7], dtype=np.float32),
        "content_features": rand(1, 512, ph, pw) * 2.0,
        "style_mean": rand(1, 512, 1, 1),
        "style_std": rand(1, 512, 1, 1) + 0.1,
    }
    return {name: values[name] for name in SPECS[graph].inputs}


def _dynamic_shapes(spec: GraphSpec) -> tuple[Any, ...]:
    dims: dict[str, torch.export.Dim] = {}

    def dim(name: str) -> torch.export.Dim:
        if name not in dims:
            if name == "batch":
                dims[name] = torch.export.Dim(name, min=1, max=64)
            elif name.startswith("feature"):
                dims[name] = torch.export.Dim(name, min=MIN_SIZE // 8, max=MAX_SIZE // 8)
            else:
                dims[name] = torch.export.Dim(name, min=MIN_SIZE, max=MAX_SIZE)
        return dims[name]

    return tuple({axis: dim(n) for axis, n in spec.dynamic.get(inp, {}).items()} or None for inp in spec.inputs)


def _export_graph(module: nn.Module, graph: str) -> onnx.ModelProto:
    spec = SPECS[graph]
    args = tuple(torch.from_numpy(v) for v in example_inputs(graph, 64, 72).values())
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs a line per absent torchvision op
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=OPSET, input_names=list(spec.inputs),
            output_names=list(spec.outputs), dynamic_shapes=_dynamic_shapes(spec),
            external_data=False, verbose=False,
        )
    quiet.setLevel(level)
    model = program.model_proto
    for out in model.graph.output:
        for axis, name in spec.output_dims.get(out.name, {}).items():
            out.type.tensor_type.shape.dim[axis].dim_param = name
    return model


def _metadata(graph: str, spec: GraphSpec, provenance: dict[str, str], precision: str) -> dict[str, str]:
    return {
        "adainrt_version": __version__,
        "adainrt_graph": graph,
        "description": spec.note,
        "preprocessing": PREPROCESSING,
        "value_range": "inputs and output image RGB in [0, 1]; the output is not clipped",
        "alpha_range": "alpha in [0, 1]: 0 = content reconstruction, 1 = full stylization",
        "inputs": json.dumps(list(spec.inputs)),
        "outputs": json.dumps(list(spec.outputs)),
        "min_size": str(MIN_SIZE),
        "size_multiple": str(SIZE_MULTIPLE),
        "precision": precision if precision == "fp32" else
        "fp16 (weights, activations); AdaIN statistics fp32; inputs and outputs fp32",
        **provenance,
    }


@dataclass
class ExportResult:
    path: Path
    graph: str
    max_abs_error: dict[str, float]  # "HxW" -> max |onnxruntime - torch|
    output_range: dict[str, float]


def export_model(
    model: AdaINModel,
    output_dir: str | os.PathLike,
    form: str = "split",
    provenance: dict[str, str] | None = None,
    verify_sizes: tuple[tuple[int, int], ...] = ((256, 256), (333, 517)),
    overwrite: bool = False,
    progress: Callable[[str], None] = lambda _msg: None,
    precision: str = "fp32",
) -> list[ExportResult]:
    """Export ``model`` in ``form`` ("full" or "split") into ``output_dir`` and verify it.

    Verification compares against the FP32 PyTorch model in both precisions, so for FP16 the
    error printed is the FP16 graph's deviation from FP32.
    """
    if form not in FORMS:
        raise ModelError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    output_dir = Path(output_dir)
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    paths = {g: output_dir / graph_file(g, precision) for g in FORM_GRAPHS[form]}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ModelError(f"{', '.join(existing)} already exist; pass --overwrite to replace them")
    model = model.eval()
    results = []
    for graph, path in paths.items():
        spec = SPECS[graph]
        progress(f"exporting {graph} graph to {path}")
        proto = _export_graph(_wrap(graph, model, precision), graph)
        for key, value in _metadata(graph, spec, provenance or {}, precision).items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = "adainrt"
        proto.producer_version = __version__
        onnx.checker.check_model(proto, full_check=True)
        with atomic_path(path) as tmp:
            onnx.save_model(proto, str(tmp))
        progress(f"verifying {graph} graph against PyTorch")
        errors, ranges = verify_against_torch(path, _wrap(graph, model), graph, verify_sizes)
        results.append(ExportResult(path, graph, errors, ranges))
    return results


def verify_against_torch(
    path: Path, module: nn.Module, graph: str, sizes: tuple[tuple[int, int], ...]
) -> tuple[dict[str, float], dict[str, float]]:
    """Max abs error of onnxruntime (CPU) vs PyTorch at each content size, and output ranges."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    errors, ranges = {}, {}
    for height, width in sizes:
        feeds = example_inputs(graph, height, width, seed=height * 7919 + width)
        with torch.no_grad():
            expected = module(*(torch.from_numpy(v) for v in feeds.values()))
        expected = expected if isinstance(expected, tuple) else (expected,)
        got = session.run(None, feeds)
        key = f"{height}x{width}"
        errors[key] = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        ranges[key] = max(float(e.max() - e.min()) for e in expected)
    return errors, ranges
