"""TensorRT's and cuda-python's libraries, loaded on demand with one clear error when they cannot be.

The engine builder and the runner both reach the GPU only through these functions, so how a
missing library, a CUDA error or the GPU's identity reads is decided once, here.
"""

from __future__ import annotations

from typing import Any

from adainrt.errors import BackendUnavailable


def load_tensorrt() -> Any:
    """The tensorrt module, or BackendUnavailable saying how to install it."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when its libraries are missing
        raise BackendUnavailable(
            "TensorRT is not installed or cannot load (pip install 'adainrt[gpu]' on a machine with "
            f"an NVIDIA GPU and driver): {exc}"
        ) from exc
    return trt


def tensorrt_version() -> str | None:
    """TensorRT's Python API version, or None when it is absent or cannot load its libraries."""
    try:
        return load_tensorrt().__version__
    except BackendUnavailable:
        return None


def load_cudart() -> Any:
    """cuda-python's runtime API module (cuda.bindings.runtime, or cuda.cudart before 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as exc:
            raise BackendUnavailable("cuda-python is not installed: pip install 'adainrt[gpu]'") from exc
    return cudart


def check_cuda(result: Any) -> Any:
    """cuda-python returns (error, value...): raise on error (with CUDA's own message), return the value(s)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise BackendUnavailable(f"CUDA error {err}: {_cuda_message(err)}")
    return values[0] if len(values) == 1 else values


def _cuda_message(err: Any) -> str:
    try:
        _code, text = load_cudart().cudaGetErrorString(err)
        return text.decode() if isinstance(text, bytes) else str(text)
    except Exception:  # the message is a courtesy; the code above is the fact
        return "no message"


def gpu_identity() -> tuple[str, str]:
    """(name, compute capability 'M.m') of GPU 0, or BackendUnavailable."""
    props = check_cuda(load_cudart().cudaGetDeviceProperties(0))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), f"{props.major}.{props.minor}"
