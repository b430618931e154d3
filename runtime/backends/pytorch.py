"""PyTorch eager as a backend (``torch``): an exported graph's own weights run by the network module
it was traced from, in FP32 on the CPU.

It is the reference the others are measured against in `adainrt bench` (eager, as the paper timed)
and what `adainrt evaluate` scores by default, so it is a runner like the others: the callers name
no backend. ``auto`` never picks it (``automatic=False``): deployment runs the graphs on a runtime.
The graph's metadata names its part of the network (full, encoder, style, decoder) and its variant;
its initializers are the module's parameters by name (``model.encoder.0.weight``), so the weights
that run are exactly the graph's. Needs torch and onnx (the exporter's install).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adainrt.contract import fed_inputs, graph_metadata, read_graph
from adainrt.errors import ModelError
from adainrt.runtime.backend import Backend, RunnerBase, Value, register_backend


class TorchRunner(RunnerBase):
    """One graph file run by its PyTorch module, loaded from the graph's initializers."""

    def __init__(self, path: str | Path):
        from onnx import numpy_helper

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX file; create it with `adainrt export`")
        proto = read_graph(self.path, weights=True)
        self.metadata = graph_metadata(proto)
        if self.metadata.get("precision", "fp32") != "fp32":
            raise ModelError(f"{self.path}: a {self.metadata['precision']} graph; the torch backend runs the FP32 "
                             "graphs (`adainrt export --precision fp32`)")
        weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        self.input_names = fed_inputs(proto)
        self.output_names = [o.name for o in proto.graph.output]
        self.module = _module(self.path, self.metadata, weights)

    def _infer(self, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
        import torch

        inputs = [feeds[name] if isinstance(feeds[name], torch.Tensor)
                  else torch.from_numpy(np.ascontiguousarray(feeds[name], dtype=np.float32))
                  for name in self.input_names]
        with torch.inference_mode():
            outputs = self.module(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return {name: value if name in keep else value.numpy()
                for name, value in zip(self.output_names, outputs)}

    def _close(self) -> None:
        self.module = None


def _module(path: Path, metadata: dict[str, str], weights: dict[str, np.ndarray]) -> Any:
    """The graph's module (its part of the network, its variant) holding the graph's weights."""
    import torch

    from adainrt.network import AdaINModel, build_decoder, build_encoder, graph_module
    from adainrt.spec import DEFAULT_VARIANT, check_variant

    graph = metadata.get("adainrt_graph")
    if graph not in ("full", "encoder", "style", "decoder"):
        raise ModelError(f"{path}: not a graph of `adainrt export` (its metadata names no adainrt graph)")
    variant = check_variant(metadata.get("variant", DEFAULT_VARIANT)).name
    module = graph_module(graph, AdaINModel(build_encoder(variant), build_decoder(variant)))
    needed = {name for name in module.state_dict()
              if name.startswith("model.encoder." if graph in ("encoder", "style") else
                                 "model.decoder." if graph == "decoder" else "model.")}
    missing = needed - set(weights)
    if missing:
        raise ModelError(f"{path}: its weights do not name the {variant} {graph} graph's parameters (missing "
                         f"{sorted(missing)[0]} and {len(missing) - 1} more); export it again with `adainrt export`")
    try:
        module.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in needed}, strict=False)
    except RuntimeError as exc:  # shapes of another width plan
        raise ModelError(f"{path}: its weights do not fit the {variant} network ({exc})") from exc
    return module.eval()


def _probe() -> str | None:
    for name in ("torch", "onnx"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not installed (pip install torch onnx: the exporter's install)"
    return None


def _libraries() -> dict[str, str]:
    try:
        return {"torch": importlib.metadata.version("torch")}
    except importlib.metadata.PackageNotFoundError:
        return {"torch": "absent (needed for export, train, import-weights)"}


register_backend(Backend(
    name="torch", summary="PyTorch eager on the graph's own weights (FP32; the reference bench and evaluate use)",
    device="cpu", precisions=("fp32",), preference=1000, probe=_probe,
    open=lambda path, _precision: TorchRunner(path), libraries=_libraries, automatic=False,
))
