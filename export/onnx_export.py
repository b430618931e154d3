"""Export the AdaIN network to ONNX: one ``full`` graph or the three ``split`` graphs.

Every graph has dynamic H and W (content and style independent), alpha as an input, opset 18,
passes ``onnx.checker``, is verified against PyTorch in onnxruntime right after export, and
carries its provenance in ``metadata_props``. Files are written atomically.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from adainrt import __version__
from adainrt.contract import (
    FEATURE_CHANNELS,
    MANIFEST,
    MAX_SIZE,
    PREPROCESSING,
    GraphContract,
    check_form,
    check_precision,
    concrete_shape,
    graph_contracts,
    graph_entry,
    graph_file,
    new_manifest,
)
from adainrt.contract import FORMS as CONTRACT_FORMS
from adainrt.errors import ModelError, OutputExists
from adainrt.fileio import atomic_path, atomic_write_bytes, check_folder_path, folder_lock, refuse_existing, sha256_file
from adainrt.network import AdaINModel, graph_module
from adainrt.spec import DEFAULT_VARIANT, MIN_SIZE, SIZE_MULTIPLE, check_variant

OPSET = 18
FORMS = tuple(CONTRACT_FORMS)


def example_inputs(graph: str, height: int, width: int, seed: int = 0,
                   channels: int = FEATURE_CHANNELS) -> dict[str, np.ndarray]:
    """Random inputs of one graph at a content size (style a different size, alpha 0.7), for a
    network whose relu4_1 has ``channels`` channels."""
    rng = np.random.default_rng(seed)
    style_hw = (height + 13, width + 21)
    scale = {"content_features": 2.0}
    offset = {"style_std": 0.1}
    values = {}
    for spec in graph_contracts(channels)[graph].inputs:
        if spec.name == "alpha":
            values[spec.name] = np.array([0.7], dtype=np.float32)
            continue
        shape = concrete_shape(spec, (height, width), style_hw)
        values[spec.name] = rng.random(shape, dtype=np.float32) * scale.get(spec.name, 1.0) \
            + np.float32(offset.get(spec.name, 0.0))
    return values


def _dim(name: str) -> torch.export.Dim:
    """torch.export's bounds for a symbolic dimension of the contract."""
    if name == "batch":
        return torch.export.Dim(name, min=1, max=64)
    if name.startswith("feature"):
        return torch.export.Dim(name, min=MIN_SIZE // SIZE_MULTIPLE, max=MAX_SIZE // SIZE_MULTIPLE)
    return torch.export.Dim(name, min=MIN_SIZE, max=MAX_SIZE)


def _dynamic_shapes(contract: GraphContract) -> tuple[Any, ...]:
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for spec in contract.inputs:
        axes = {axis: dims.setdefault(d, _dim(d)) for axis, d in enumerate(spec.shape) if isinstance(d, str)}
        shapes.append(axes or None)
    return tuple(shapes)


def _export_graph(module: nn.Module, graph: str, channels: int) -> onnx.ModelProto:
    contract = graph_contracts(channels)[graph]
    args = tuple(torch.from_numpy(v) for v in example_inputs(graph, 64, 72, channels=channels).values())
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it logs a line per absent torchvision op
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, args, dynamo=True, opset_version=OPSET, input_names=list(contract.input_names),
            output_names=list(contract.output_names), dynamic_shapes=_dynamic_shapes(contract),
            external_data=False, verbose=False,
        )
    quiet.setLevel(level)
    model = program.model_proto
    for out in model.graph.output:
        for axis, dim in enumerate(contract.tensor(out.name).shape):
            if isinstance(dim, str):
                out.type.tensor_type.shape.dim[axis].dim_param = dim
    return model


def _metadata(graph: str, provenance: dict[str, str], precision: str, channels: int) -> dict[str, str]:
    contract = graph_contracts(channels)[graph]
    return {
        "adainrt_version": __version__,
        "adainrt_graph": graph,
        "description": contract.note,
        "preprocessing": PREPROCESSING,
        "value_range": "inputs and output image RGB in [0, 1]; the output is not clipped",
        "alpha_range": "alpha in [0, 1]: 0 = content reconstruction, 1 = full stylization",
        "inputs": json.dumps(list(contract.input_names)),
        "outputs": json.dumps(list(contract.output_names)),
        "min_size": str(MIN_SIZE),
        "size_multiple": str(SIZE_MULTIPLE),
        "precision": precision if precision == "fp32" else
        "fp16 (weights, activations); AdaIN statistics fp32; inputs and outputs fp32",
        "variant": DEFAULT_VARIANT,
        **provenance,
        "feature_channels": str(channels),
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
    """Export ``model`` in ``form`` ("full" or "split") into ``output_dir``, verify it, record it.

    Verification compares against the FP32 PyTorch model in both precisions, so for FP16 the
    error printed is the FP16 graph's deviation from FP32; an FP32 graph beyond its contract's
    tolerance is refused. The folder's ``manifest.json`` is updated last, so a graph written by
    an export that did not finish never matches it (and is refused at load).
    """
    graphs = check_form(form)
    check_precision(precision)
    output_dir = Path(output_dir)
    check_folder_path(output_dir)  # before minutes of export
    provenance = provenance or {}
    variant = check_variant(provenance.get("variant", DEFAULT_VARIANT))
    if variant.feature_channels != model.feature_channels:
        raise ModelError(f"the model's relu4_1 has {model.feature_channels} channels, but its provenance names "
                         f"the {variant.name} network ({variant.feature_channels}); load it with load_model")
    paths = {g: output_dir / graph_file(g, precision) for g in graphs}
    _check_targets(output_dir, paths, provenance, overwrite)  # at once, before waiting for another export
    with folder_lock(output_dir):  # a second export into the folder waits, then finds the first's graphs
        _check_targets(output_dir, paths, provenance, overwrite)
        results = _export_graphs(model.eval(), paths, provenance, verify_sizes, overwrite, progress, precision)
        _record(output_dir, provenance, precision, paths)
    return results


def _check_targets(output_dir: Path, paths: dict[str, Path], provenance: dict[str, str], overwrite: bool) -> None:
    """Without ``overwrite``, refuse graphs already there, and a folder whose manifest records other
    weights (adding to it would drop their graphs from the manifest)."""
    if overwrite:
        return
    refuse_existing(paths.values())
    recorded = _read_recorded(output_dir / MANIFEST)
    if recorded.get("graphs") and not _same_weights(recorded, provenance):
        held = ", ".join(sorted(recorded["graphs"]))
        raise OutputExists(output_dir / MANIFEST, f"graphs of other weights in {output_dir} ({held})", count=2)


def _read_recorded(manifest_path: Path) -> dict[str, Any]:
    """A folder's manifest as an export reads it back: {} where there is none, or none readable."""
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("graphs"), dict) else {}


def _same_weights(manifest: dict[str, Any], provenance: dict[str, str]) -> bool:
    return all(manifest.get(k) == provenance.get(k, "") for k in ("encoder_hash", "decoder_hash"))


def _export_graphs(model: AdaINModel, paths: dict[str, Path], provenance: dict[str, str],
                   verify_sizes: tuple[tuple[int, int], ...], overwrite: bool, progress: Callable[[str], None],
                   precision: str) -> list[ExportResult]:
    results = []
    for graph, path in paths.items():
        progress(f"exporting {graph} graph to {path}")
        channels = model.feature_channels
        proto = _export_graph(graph_module(graph, model, precision), graph, channels)
        for key, value in _metadata(graph, provenance, precision, channels).items():
            proto.metadata_props.add(key=key, value=value)
        proto.producer_name = "adainrt"
        proto.producer_version = __version__
        onnx.checker.check_model(proto, full_check=True)
        with atomic_path(path, overwrite=overwrite) as tmp:
            onnx.save_model(proto, str(tmp))
        progress(f"verifying {graph} graph against PyTorch")
        errors, ranges = verify_against_torch(path, graph_module(graph, model), graph, verify_sizes, channels)
        _check_tolerance(path, graph, precision, errors, ranges)
        results.append(ExportResult(path, graph, errors, ranges))
    return results


def _check_tolerance(path: Path, graph: str, precision: str, errors: dict[str, float],
                     ranges: dict[str, float]) -> None:
    """FP32 graphs must match PyTorch within their contract's tolerance (FP16 is checked by PSNR later)."""
    if precision != "fp32":
        return
    bound = graph_contracts()[graph].tolerance.fp32_rel
    for size, error in errors.items():
        if error > bound * max(ranges[size], 1e-6):
            path.unlink(missing_ok=True)
            raise ModelError(f"{path}: onnxruntime differs from PyTorch by {error:.3g} at {size} (output range "
                             f"{ranges[size]:.3g}, tolerance {bound:g} of it); the graph was not kept")


def _record(output_dir: Path, provenance: dict[str, str], precision: str, paths: dict[str, Path]) -> None:
    """Add the graphs to the folder's manifest (a new one when the weights differ from those recorded).
    Called under the folder's lock: two exports into one folder (say fp32 and fp16) keep each other's entries."""
    manifest_path = output_dir / MANIFEST
    manifest = _read_recorded(manifest_path)
    if not (manifest and _same_weights(manifest, provenance)):
        manifest = new_manifest(provenance, __version__)
    for graph, path in paths.items():
        manifest["graphs"][path.name] = graph_entry(graph, precision, sha256_file(path),
                                                   manifest.get("variant", DEFAULT_VARIANT))
    atomic_write_bytes(manifest_path, json.dumps(manifest, indent=1).encode())


def verify_against_torch(
    path: Path, module: nn.Module, graph: str, sizes: tuple[tuple[int, int], ...], channels: int = FEATURE_CHANNELS,
) -> tuple[dict[str, float], dict[str, float]]:
    """Max abs error of the exported graph vs PyTorch at each content size, and output ranges. The
    graph runs on the registry's FP32 reference backend (onnxruntime CPU where installed, else
    OpenVINO at f32), through the same runner the runtime uses."""
    from adainrt.runtime.backend import reference_backend

    errors, ranges = {}, {}
    with reference_backend().load(path, "fp32") as runner:
        for height, width in sizes:
            feeds = example_inputs(graph, height, width, seed=height * 7919 + width, channels=channels)
            with torch.no_grad():
                expected = module(*(torch.from_numpy(v) for v in feeds.values()))
            expected = expected if isinstance(expected, tuple) else (expected,)
            got = runner.infer(feeds)
            key = f"{height}x{width}"
            errors[key] = max(float(np.abs(got[name] - e.numpy()).max())
                              for name, e in zip(runner.output_names, expected))
            ranges[key] = max(float(e.max() - e.min()) for e in expected)
    return errors, ranges
