"""onnxruntime's execution providers as backends: ort-trt, ort-cuda, ort-cpu (numpy + onnxruntime only).

onnxruntime is an extra: ``adainrt[cpu]`` (onnxruntime) or ``adainrt[gpu]`` (onnxruntime-gpu),
never both, since the two wheels overwrite each other. A provider counts as usable only when a
real session ends up running on it: onnxruntime-gpu lists the CUDA and TensorRT providers even
without a GPU, then silently falls back to the CPU. Outputs kept on the device are OrtValues,
handed to the next graph through IO binding: on the CUDA/TensorRT providers relu4_1 goes from
the encoder to the decoder without two host round trips (8 MB each way at 512x512); on the CPU
it is the same code path in host memory.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adainrt.errors import BackendUnavailable, ModelError
from adainrt.fileio import stdout_to_stderr
from adainrt.hardware import gpu_name
from adainrt.runtime.backend import Backend, CacheFolder, RunnerBase, Value, register_backend
from adainrt.runtime.backends.tensorrt.cuda import tensorrt_version
from adainrt.runtime.backends.tensorrt.engine import MAX_SIDE, profiles_for

#: Backend name -> onnxruntime provider, best first.
PROVIDERS = {
    "ort-trt": "TensorrtExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
#: The TensorRT EP's engines and timing caches (`adainrt cache` lists and clears it).
TRT_CACHE = CacheFolder("ort-trt", "onnxruntime TensorRT provider's engines; rebuilt on a GPU on first use (minutes)")


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailable("onnxruntime is not installed: pip install 'adainrt[cpu]' (or 'adainrt[gpu]' "
                                 "with an NVIDIA GPU)") from exc
    return onnxruntime


def trt_cache_dir() -> Path:
    """Where the TensorRT EP keeps its engine and timing caches: one folder per GPU and TensorRT
    version, since neither cache is valid for another."""
    key = f"{gpu_name() or 'no-gpu'}-trt{tensorrt_version() or 'unknown'}"
    return TRT_CACHE.path() / re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def trt_options(path: Path | None) -> dict[str, str]:
    """The TensorRT EP's options for one graph: explicit profile shapes (the native engines' profile,
    so a new image size does not rebuild the engine), caches, and no FP16 flag: the FP16 graphs carry
    their own types, AdaIN statistics in FP32 (the flag would let TensorRT take FP16 for sums of
    squares that reach 3.4e5)."""
    folder = str(trt_cache_dir())
    options = {"trt_fp16_enable": "False", "trt_engine_cache_enable": "True", "trt_engine_cache_path": folder,
               "trt_timing_cache_enable": "True", "trt_timing_cache_path": folder}
    if path is not None:
        profiles = profiles_for(path)
        for key in ("min", "opt", "max"):
            options[f"trt_profile_{key}_shapes"] = ",".join(
                f"{p.name}:{'x'.join(map(str, getattr(p, key)))}" for p in profiles)
    return options


def provider_chain(backend: str, path: Path | None = None) -> list:
    """The providers argument for a backend (for the graph at ``path``): its provider, then the lower
    present ones."""
    names = list(PROVIDERS)
    present = set(_ort().get_available_providers())
    chain: list = []
    for name in names[names.index(backend):]:
        provider = PROVIDERS[name]
        if provider in present:
            chain.append((provider, trt_options(path)) if name == "ort-trt" else provider)
    return chain


class OrtRunner(RunnerBase):
    """One ONNX graph in one onnxruntime session, with its adainrt metadata."""

    def __init__(self, path: str | Path, providers: list):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX file; create it with `adainrt export`")
        try:
            self.session = _session(str(self.path), providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"{self.path}: onnxruntime cannot load it ({exc})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.providers = self.session.get_providers()
        # Where outputs bound with IO binding live: the GPU for the CUDA and TensorRT providers.
        self.device = "cuda" if self.providers[0] in GPU_PROVIDERS else "cpu"

    def _infer(self, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
        try:
            return self._run(_ort(), feeds, keep)
        except Exception as exc:  # onnxruntime's Fail/RuntimeException: out of memory, a shape beyond a profile
            raise ModelError(f"{self.path}: onnxruntime failed to run it ({exc})") from exc

    def _run(self, ort: Any, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
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

    def _close(self) -> None:
        self.session = None  # onnxruntime frees the session (and its device memory) with the object


#: Idle intra-op threads sleep instead of spinning. Each session has its own pool, and the cached-style
#: path runs two (encoder, then decoder): the encoder's threads, spinning after their run, took the
#: cores from the decoder's. On 2 AVX2 cores (2026-12-06) encoder + decoder in turn took 113 ms for
#: lite at 256x256 spinning, 61 ms not (each alone: 31-34 and 36 ms); full 1005 -> 812 ms.
NO_SPINNING = ("session.intra_op.allow_spinning", "0")


def _session(model: str | bytes, providers: list) -> Any:
    """An InferenceSession; what onnxruntime prints on standard output (its "EP Error ... Falling
    back" blocks) goes to standard error, so `--json` output stays JSON."""
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry(*NO_SPINNING)
    with stdout_to_stderr():
        return ort.InferenceSession(model, options, providers=providers)


def _probe_model() -> bytes:
    """A one-node graph (Identity on a float vector) to see which provider a session really gets."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10).SerializeToString()


@functools.cache
def _probe(backend: str) -> str | None:
    """None when a session asked for this backend's provider runs on it, else why not."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install 'adainrt[cpu]', or 'adainrt[gpu]' with an NVIDIA GPU)"
    ort = _ort()
    provider = PROVIDERS[backend]
    present = ort.get_available_providers()
    if provider not in present:
        return (f"needs onnxruntime's {provider}, which this onnxruntime does not have (present: "
                f"{', '.join(present)}); install adainrt[gpu] (onnxruntime-gpu) on a machine with an NVIDIA GPU")
    if backend == "ort-cpu":
        return None
    try:
        got = _session(_probe_model(), provider_chain(backend)).get_providers()
    except Exception as exc:  # a provider that fails hard instead of falling back
        return f"onnxruntime's {provider} is installed but cannot start a session ({exc})"
    if got[0] != provider:
        return (f"onnxruntime lists {provider}, but a session falls back to {got[0]} (no usable NVIDIA GPU, "
                "driver, CUDA or TensorRT libraries here; `nvidia-smi` should list the GPU)")
    return None


def _open(backend: str, path: Path) -> OrtRunner:
    """A runner that really runs on the backend's provider (a session that fell back is refused, so a
    CPU timing is never labelled ort-cuda)."""
    runner = OrtRunner(path, provider_chain(backend, path))
    if runner.providers[0] != PROVIDERS[backend]:
        runner.close()
        raise BackendUnavailable(f"backend {backend}: onnxruntime fell back to {runner.providers[0]} for {path}")
    return runner


def _distributions() -> str:
    """Which onnxruntime wheel is installed (both at once overwrite each other: said, with the fix)."""
    found = {d: importlib.metadata.version(d) for d in ("onnxruntime", "onnxruntime-gpu") if _installed(d)}
    if not found:
        return "absent (pip install 'adainrt[cpu]', or 'adainrt[gpu]' with an NVIDIA GPU)"
    warning = "; BOTH installed: they overwrite each other, keep one" if len(found) > 1 else ""
    return ", ".join(f"{d} {v}" for d, v in found.items()) + warning


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _libraries() -> dict[str, str]:
    """onnxruntime's wheel and the providers it offers, for `adainrt info`."""
    try:
        providers = ", ".join(_ort().get_available_providers())
    except BackendUnavailable:
        providers = "none (onnxruntime absent)"
    return {"onnxruntime": _distributions(), "providers": providers}


def _register(name: str, summary: str, device: str, preference: int, precisions: tuple[str, ...],
              **facts: Any) -> None:
    register_backend(Backend(
        name=name, summary=summary, device=device, precisions=precisions, preference=preference,
        probe=lambda: _probe(name), open=lambda path, _precision: _open(name, path), libraries=_libraries, **facts,
    ))


_register("ort-trt", "onnxruntime's TensorRT execution provider (the FP16 graphs, engine cache, explicit profile)",
          "cuda", 20, ("fp16", "fp32"), max_side=MAX_SIDE, max_batch=1, cache=(TRT_CACHE,))
_register("ort-cuda", "onnxruntime's CUDA execution provider", "cuda", 30, ("fp32", "fp16"))
# The FP32 reference others are compared with: deterministic FP32 on the CPU, in every install with onnxruntime.
_register("ort-cpu", "onnxruntime's CPU execution provider", "cpu", 90, ("fp32", "fp16"), reference_rank=0)
