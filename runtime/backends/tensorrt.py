"""Native TensorRT engines of the FP16 graphs as a backend (TensorRT 10.12+/11, cuda-python).

Preparing a graph builds its engine once into the cache (strongly typed, one profile; see
:mod:`adainrt.runtime.tensorrt_engine`); opening only deserializes it, never builds. The
runner owns one execution context, device buffers, a CUDA stream and pinned host memory, and
frees them all in :meth:`TensorRTRunner.close`; outputs kept for the next engine stay on the GPU.
Not yet run on a GPU by this project: ``tests/trt_emulation.py`` emulates exactly the tensorrt
and cuda-python calls made here to test this logic on a CPU (not GPU verification).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import shutil
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adainrt.errors import BackendUnavailable, ModelError
from adainrt.runtime.backend import Backend, RunnerBase, Value, register_backend
from adainrt.runtime.tensorrt_engine import (
    MAX_SIDE,
    _check,
    _cudart,
    _tensorrt,
    cached_engine,
    check_compatible,
    check_shapes,
    engine_path_for,
    gpu_identity,
    read_sidecar,
)


@functools.cache
def tensorrt_ready() -> str | None:
    """None when native TensorRT can run here, else why not (importing it: its libraries may fail to load)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install 'adainrt[gpu]')"
    try:
        _tensorrt()
    except BackendUnavailable as exc:
        return str(exc)
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python is not installed (pip install 'adainrt[gpu]')"
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU driver (nvidia-smi) found"
    return None


@dataclass(frozen=True)
class DeviceTensor:
    """An output left in a runner's device buffer (``keep``): another runner of this backend takes it
    as an input without a copy. Valid until its owner's next ``infer`` or ``close``."""

    ptr: int
    shape: tuple[int, ...]


class TensorRTRunner(RunnerBase):
    """Runs one engine: one execution context, device buffers, a CUDA stream, pinned host memory,
    ``execute_async_v3``. With ``use_cuda_graph``, a call whose shapes and buffers repeat the
    previous call's is captured once as a CUDA graph and replayed after (video, bench); a call
    that differs runs directly, so sizes that keep changing never pay for a capture."""

    def __init__(self, engine_path: str | os.PathLike, use_cuda_graph: bool = True):
        trt = _tensorrt()
        self.cudart = _cudart()
        self.path = Path(engine_path)
        self.sidecar = read_sidecar(engine_path)
        self.metadata = self.sidecar.metadata
        check_compatible(self.sidecar, trt.__version__, *gpu_identity())
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ModelError(f"{engine_path}: TensorRT could not deserialize it; rebuild the engine")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [n for n in names if n not in self.input_names]
        wrong = [n for n in names if self.engine.get_tensor_dtype(n) != trt.DataType.FLOAT]
        if wrong:  # the buffers below are float32; our graphs keep FP32 I/O in every precision
            raise ModelError(f"{engine_path}: tensors {wrong} are not float32; build the engine from adainrt's graphs")
        self.context = self.engine.create_execution_context()
        self.stream = _check(self.cudart.cudaStreamCreate())  # the last thing allocated: nothing leaks above
        self.use_cuda_graph = use_cuda_graph
        self._buffers: dict[str, tuple[int, int, np.ndarray, int]] = {}  # name -> (device, bytes, host view, host)
        self._last_key: tuple | None = None  # shapes and addresses of the previous call
        self._graph_key: tuple | None = None
        self._graph = self._graph_exec = None

    def _free(self, held: tuple[int, int, np.ndarray, int]) -> None:
        _check(self.cudart.cudaFree(held[0]))
        _check(self.cudart.cudaFreeHost(held[3]))

    def _buffer(self, name: str, shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
        nbytes = int(np.prod(shape)) * 4
        held = self._buffers.get(name)
        if held is None or held[1] < nbytes:
            if held is not None:
                self._free(held)
            device = _check(self.cudart.cudaMalloc(nbytes))
            host_ptr = int(_check(self.cudart.cudaMallocHost(nbytes)))
            host = np.ctypeslib.as_array((ctypes.c_float * (nbytes // 4)).from_address(host_ptr))
            held = (int(device), nbytes, host, host_ptr)
            self._buffers[name] = held
        return held[0], held[2][: int(np.prod(shape))].reshape(shape)

    def infer(self, feeds: Mapping[str, Value], keep: Collection[str] = ()) -> dict[str, Value]:
        """FP32 numpy (or another engine's :class:`DeviceTensor`) in; FP32 numpy out, or a DeviceTensor
        for the outputs named in ``keep``, which then never leave the GPU."""
        self._check_feeds(feeds)
        shapes = {name: tuple(feeds[name].shape) for name in self.input_names}
        check_shapes(self.sidecar, shapes)
        h2d = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        addresses = {}
        for name in self.input_names:
            if not self.context.set_input_shape(name, shapes[name]):
                raise ModelError(f"{self.path}: TensorRT refused shape {shapes[name]} for {name}")
            value = feeds[name]
            if isinstance(value, DeviceTensor):
                addresses[name] = value.ptr
            else:
                addresses[name], host = self._buffer(name, shapes[name])
                host[...] = value
                _check(self.cudart.cudaMemcpyAsync(addresses[name], host.ctypes.data, host.nbytes, h2d, self.stream))
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            addresses[name], host = self._buffer(name, shape)
            outputs[name] = (shape, host)
        for name, address in addresses.items():
            self._address(name, address)
        self._execute((tuple(sorted(shapes.items())), tuple(sorted(addresses.items()))))
        for name, (_shape, host) in outputs.items():
            if name not in keep:
                _check(self.cudart.cudaMemcpyAsync(host.ctypes.data, addresses[name], host.nbytes, d2h, self.stream))
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return {name: DeviceTensor(addresses[name], shape) if name in keep else host.copy()
                for name, (shape, host) in outputs.items()}

    def _address(self, name: str, device: int) -> None:
        if not self.context.set_tensor_address(name, device):
            raise ModelError(f"{self.path}: TensorRT refused the buffer of {name}")

    def _enqueue(self) -> None:
        if not self.context.execute_async_v3(self.stream):
            raise ModelError(f"{self.path}: TensorRT execution failed")

    def _execute(self, key: tuple) -> None:
        """Run once: replay the captured graph when this call repeats it; else run directly and, when
        it repeats the previous call (sizes have settled), capture it for the calls after."""
        if self.use_cuda_graph and key == self._graph_key:
            _check(self.cudart.cudaGraphLaunch(self._graph_exec, self.stream))
            return
        self._enqueue()  # this call's result; also the enqueue TensorRT wants before a capture
        repeated, self._last_key = key == self._last_key, key
        if self.use_cuda_graph and repeated:
            self._capture(key)

    def _capture(self, key: tuple) -> None:
        self._drop_graph()
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        _check(self.cudart.cudaStreamBeginCapture(self.stream, mode))
        captured = self.context.execute_async_v3(self.stream)
        graph = _check(self.cudart.cudaStreamEndCapture(self.stream))  # end the capture whatever happened
        if not captured:
            _check(self.cudart.cudaGraphDestroy(graph))
            raise ModelError(f"{self.path}: TensorRT could not be captured as a CUDA graph")
        self._graph = graph
        self._graph_exec = _check(self.cudart.cudaGraphInstantiate(graph, 0))
        self._graph_key = key

    def _drop_graph(self) -> None:
        if self._graph_exec is not None:
            _check(self.cudart.cudaGraphExecDestroy(self._graph_exec))
        if self._graph is not None:
            _check(self.cudart.cudaGraphDestroy(self._graph))
        self._graph = self._graph_exec = self._graph_key = None

    def close(self) -> None:
        """Free the buffers, pinned memory, CUDA graph and stream; drop the context and engine."""
        if self._closed:
            return
        super().close()
        for held in self._buffers.values():
            self._free(held)
        self._buffers.clear()
        self._drop_graph()
        _check(self.cudart.cudaStreamDestroy(self.stream))
        self.context = self.engine = self.runtime = None


def _prepare(onnx_path: Path, _precision: str = "fp16") -> None:
    cached_engine(onnx_path)  # built on first use (slow), found in the cache afterwards


def _open(onnx_path: Path, _precision: str = "fp16") -> TensorRTRunner:
    engine = engine_path_for(onnx_path)
    if not engine.is_file():
        raise ModelError(f"no engine for {onnx_path} in the cache; prepare it first (the Stylizer and bench "
                         "do), or build one with `adainrt build-engine`")
    return TensorRTRunner(engine)


register_backend(Backend(
    name="tensorrt", summary="native TensorRT engines of the FP16 graphs (strongly typed), built once and cached",
    device="cuda", precisions=("fp16",), preference=10, probe=tensorrt_ready, open=_open, prepare=_prepare,
    max_side=MAX_SIDE, max_batch=1,  # the default profile: batch 1 keeps the engine's memory at one image's
))
