"""onnxruntime's execution providers as backends: ort-trt, ort-cuda, ort-cpu (numpy + onnxruntime only).

Each is one provider with the lower ones behind it as fallbacks, as onnxruntime takes them.
Outputs kept on the device are OrtValues, handed to the next graph through IO binding: on
the CUDA/TensorRT providers relu4_1 goes from the encoder to the decoder without two host
round trips (8 MB each way at 512x512); on the CPU it is the same code path in host memory.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from adainrt.errors import ModelError
from adainrt.fileio import cache_root
from adainrt.runtime.backend import Backend, RunnerBase, Value, register_backend

#: Backend name -> onnxruntime provider, best first.
PROVIDERS = {
    "ort-trt": "TensorrtExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")


def trt_cache_dir() -> str:
    """Where the TensorRT EP keeps its engine and timing caches."""
    return str(cache_root() / "ort-trt")


def _trt_options() -> dict[str, str]:
    path = trt_cache_dir()
    return {
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": path,
    }


def provider_chain(backend: str) -> list:
    """The providers argument for a backend: its provider, then the lower present ones."""
    names = list(PROVIDERS)
    present = set(ort.get_available_providers())
    chain: list = []
    for name in names[names.index(backend):]:
        provider = PROVIDERS[name]
        if provider in present:
            chain.append((provider, _trt_options()) if name == "ort-trt" else provider)
    return chain


class OrtRunner(RunnerBase):
    """One ONNX graph in one onnxruntime session, with its adainrt metadata."""

    def __init__(self, path: str | Path, providers: list):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX file; create it with `adainrt export`")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()
        # Where outputs bound with IO binding live: the GPU for the CUDA and TensorRT providers.
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"

    def infer(self, feeds: Mapping[str, Value], keep: Collection[str] = ()) -> dict[str, Value]:
        self._check_feeds(feeds)
        if not keep and not any(isinstance(v, ort.OrtValue) for v in feeds.values()):
            values = self.session.run(None, {name: feeds[name] for name in self.input_names})
            return dict(zip(self.output_names, values))
        binding = self.session.io_binding()
        for name in self.input_names:
            value = feeds[name]
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in self.output_names:
            binding.bind_output(name, self.device)
        self.session.run_with_iobinding(binding)
        return {name: value if name in keep else value.numpy()
                for name, value in zip(self.output_names, binding.get_outputs())}

    def close(self) -> None:
        super().close()
        self.session = None  # onnxruntime frees the session (and its device memory) with the object


def _probe(backend: str) -> str | None:
    provider = PROVIDERS[backend]
    present = ort.get_available_providers()
    if provider in present:
        return None
    return (f"needs onnxruntime's {provider}, which this onnxruntime does not have (present: "
            f"{', '.join(present)}); install adainrt[gpu] (onnxruntime-gpu) on a machine with an NVIDIA GPU")


def _register(name: str, summary: str, device: str, preference: int) -> None:
    register_backend(Backend(
        name=name, summary=summary, device=device, precisions=("fp32", "fp16"), preference=preference,
        probe=lambda: _probe(name), open=lambda path, _precision: OrtRunner(path, provider_chain(name)),
    ))


_register("ort-trt", "onnxruntime's TensorRT execution provider (FP16, engine cache)", "cuda", 20)
_register("ort-cuda", "onnxruntime's CUDA execution provider", "cuda", 30)
_register("ort-cpu", "onnxruntime's CPU execution provider", "cpu", 90)
