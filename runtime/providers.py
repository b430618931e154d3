"""onnxruntime execution providers: what is present, which to use, and why.

The fallback chain is TensorRT EP -> CUDA EP -> CPU EP. Only numpy and onnxruntime are needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnxruntime as ort

from adainrt.errors import BackendUnavailable
from adainrt.fileio import cache_root

#: Backend name (CLI ``--backend``) -> onnxruntime provider, best first.
BACKENDS = {
    "ort-trt": "TensorrtExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-cpu": "CPUExecutionProvider",
}


@dataclass(frozen=True)
class Choice:
    backend: str
    providers: list  # onnxruntime providers argument: names or (name, options)
    reason: str


def available_backends() -> list[str]:
    present = set(ort.get_available_providers())
    return [name for name, provider in BACKENDS.items() if provider in present]


def cache_dir() -> str:
    """Where the TensorRT EP keeps its engine and timing caches."""
    return str(cache_root() / "ort-trt")


def _trt_options() -> dict[str, str]:
    path = cache_dir()
    return {
        "trt_fp16_enable": "True",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": path,
    }


def _providers(backend: str) -> list:
    """The provider list for a backend, with the lower ones behind it as fallbacks."""
    chain = list(BACKENDS)[list(BACKENDS).index(backend):]
    present = available_backends()
    out: list = []
    for name in chain:
        if name not in present:
            continue
        out.append((BACKENDS[name], _trt_options()) if name == "ort-trt" else BACKENDS[name])
    return out


def tensorrt_ready() -> str | None:
    """None when native TensorRT can run here, else why not (for `adainrt info`)."""
    import importlib.util
    import shutil

    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install 'adainrt[gpu]')"
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python is not installed (pip install 'adainrt[gpu]')"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU driver (nvidia-smi) found"
    return None


def choose_backend(requested: str = "auto") -> Choice:
    """Pick the backend: the one asked for (error if absent), or the best present.

    ``tensorrt`` (native engines from the FP16 graphs) is chosen only when asked for; ``auto``
    walks onnxruntime's chain TensorRT EP -> CUDA EP -> CPU EP.
    """
    if requested == "tensorrt":
        why_not = tensorrt_ready()
        if why_not:
            raise BackendUnavailable(f"backend tensorrt: {why_not}; or use --backend auto")
        return Choice("tensorrt", [], "requested: native TensorRT engines")
    present = available_backends()
    if requested == "auto":
        best = present[0]
        why = {
            "ort-trt": "TensorRT execution provider present (FP16, engine cache)",
            "ort-cuda": "CUDA execution provider present; TensorRT execution provider absent",
            "ort-cpu": "no GPU execution provider in this onnxruntime build "
                       f"(providers: {', '.join(ort.get_available_providers())}); "
                       "install adainrt[gpu] on a machine with an NVIDIA GPU for CUDA/TensorRT",
        }[best]
        return Choice(best, _providers(best), why)
    if requested not in BACKENDS:
        raise BackendUnavailable(
            f"unknown backend {requested!r}; choose auto or one of {', '.join(BACKENDS)}"
        )
    if requested not in present:
        raise BackendUnavailable(
            f"backend {requested} needs onnxruntime's {BACKENDS[requested]}, which this "
            f"onnxruntime does not have (present: {', '.join(ort.get_available_providers())}). "
            "Install adainrt[gpu] (onnxruntime-gpu) on a machine with an NVIDIA GPU, or use "
            "--backend auto."
        )
    return Choice(requested, _providers(requested), "requested")
