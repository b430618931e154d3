"""Native TensorRT engines of the FP16 graphs as a backend (TensorRT 10.12+/11, cuda-python).

Preparing a graph builds its engine once into the cache (strongly typed, one profile; see
:mod:`.engine`); opening only deserializes it, never builds (:mod:`.runner`). The runner owns
one execution context, device buffers, a CUDA stream and pinned host memory, and frees them all
in :meth:`TensorRTRunner.close`; outputs kept for the next engine stay on the GPU. The libraries
are reached only through :mod:`.cuda`. ``tests/trt_emulation.py`` emulates exactly the tensorrt
and cuda-python calls made here to test this logic on a CPU (not GPU verification).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from adainrt.errors import BackendUnavailable, ModelError
from adainrt.hardware import gpu_why_not
from adainrt.runtime.backend import Backend, register_backend
from adainrt.runtime.backends.tensorrt.cuda import load_tensorrt, tensorrt_version
from adainrt.runtime.backends.tensorrt.engine import CACHE, MAX_SIDE, cached_engine, engine_path_for
from adainrt.runtime.backends.tensorrt.runner import DeviceTensor, TensorRTRunner

__all__ = ["DeviceTensor", "TensorRTRunner", "tensorrt_ready"]


@functools.cache
def tensorrt_ready() -> str | None:
    """None when native TensorRT can run here, else why not (importing it: its libraries may fail to load)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install 'adainrt[gpu]')"
    try:
        load_tensorrt()
    except BackendUnavailable as exc:
        return str(exc)
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python is not installed (pip install 'adainrt[gpu]')"
    return gpu_why_not()


def _prepare(onnx_path: Path, _precision: str = "fp16") -> None:
    cached_engine(onnx_path)  # built on first use (slow), found in the cache afterwards


def _open(onnx_path: Path, _precision: str = "fp16") -> TensorRTRunner:
    engine = engine_path_for(onnx_path)
    if not engine.is_file():
        raise ModelError(f"no engine for {onnx_path} in the cache; prepare it first (the Stylizer and bench "
                         "do), or build one with `adainrt build-engine`")
    return TensorRTRunner(engine)


def _libraries() -> dict[str, str]:
    return {"tensorrt": tensorrt_version() or "absent"}


register_backend(Backend(
    name="tensorrt", summary="native TensorRT engines of the FP16 graphs (strongly typed), built once and cached",
    device="cuda", precisions=("fp16",), preference=10, probe=tensorrt_ready, open=_open, prepare=_prepare,
    max_side=MAX_SIDE, max_batch=1,  # the default profile: batch 1 keeps the engine's memory at one image's
    cache=(CACHE,), libraries=_libraries,
))
