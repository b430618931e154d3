"""The native TensorRT runner: one deserialized engine, its buffers, stream and CUDA graph.

It only loads engines (:mod:`.engine` builds them); what it allocates it frees in ``close``.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adainrt.errors import ModelError
from adainrt.runtime.backend import RunnerBase, Value
from adainrt.runtime.backends.tensorrt.cuda import check_cuda, gpu_identity, load_cudart, load_tensorrt
from adainrt.runtime.backends.tensorrt.engine import check_compatible, check_shapes, read_sidecar


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
        trt = load_tensorrt()
        self.cudart = load_cudart()
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
        self.stream = check_cuda(self.cudart.cudaStreamCreate())  # the last thing allocated: nothing leaks above
        self.use_cuda_graph = use_cuda_graph
        self._buffers: dict[str, tuple[int, int, np.ndarray, int]] = {}  # name -> (device, bytes, host view, host)
        self._last_key: tuple | None = None  # shapes and addresses of the previous call
        self._graph_key: tuple | None = None
        self._graph = self._graph_exec = None

    def _free(self, held: tuple[int, int, np.ndarray, int]) -> None:
        check_cuda(self.cudart.cudaFree(held[0]))
        check_cuda(self.cudart.cudaFreeHost(held[3]))

    def _buffer(self, name: str, shape: tuple[int, ...]) -> tuple[int, np.ndarray]:
        nbytes = int(np.prod(shape)) * 4
        held = self._buffers.get(name)
        if held is None or held[1] < nbytes:
            if held is not None:
                self._free(held)
            device = check_cuda(self.cudart.cudaMalloc(nbytes))
            host_ptr = int(check_cuda(self.cudart.cudaMallocHost(nbytes)))
            host = np.ctypeslib.as_array((ctypes.c_float * (nbytes // 4)).from_address(host_ptr))
            held = (int(device), nbytes, host, host_ptr)
            self._buffers[name] = held
        return held[0], held[2][: int(np.prod(shape))].reshape(shape)

    def _infer(self, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
        """FP32 numpy (or another engine's :class:`DeviceTensor`) in; FP32 numpy out, or a DeviceTensor
        for the outputs named in ``keep``, which then never leave the GPU."""
        shapes = {name: tuple(feeds[name].shape) for name in self.input_names}
        check_shapes(self.sidecar, shapes)
        cudart = self.cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
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
                check_cuda(cudart.cudaMemcpyAsync(addresses[name], host.ctypes.data, host.nbytes, h2d, self.stream))
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
                check_cuda(cudart.cudaMemcpyAsync(host.ctypes.data, addresses[name], host.nbytes, d2h, self.stream))
        check_cuda(self.cudart.cudaStreamSynchronize(self.stream))
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
            check_cuda(self.cudart.cudaGraphLaunch(self._graph_exec, self.stream))
            return
        self._enqueue()  # this call's result; also the enqueue TensorRT wants before a capture
        repeated, self._last_key = key == self._last_key, key
        if self.use_cuda_graph and repeated:
            self._capture(key)

    def _capture(self, key: tuple) -> None:
        self._drop_graph()
        mode = self.cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        check_cuda(self.cudart.cudaStreamBeginCapture(self.stream, mode))
        captured = self.context.execute_async_v3(self.stream)
        graph = check_cuda(self.cudart.cudaStreamEndCapture(self.stream))  # end the capture whatever happened
        if not captured:
            check_cuda(self.cudart.cudaGraphDestroy(graph))
            raise ModelError(f"{self.path}: TensorRT could not be captured as a CUDA graph")
        self._graph = graph
        self._graph_exec = check_cuda(self.cudart.cudaGraphInstantiate(graph, 0))
        self._graph_key = key

    def _drop_graph(self) -> None:
        if self._graph_exec is not None:
            check_cuda(self.cudart.cudaGraphExecDestroy(self._graph_exec))
        if self._graph is not None:
            check_cuda(self.cudart.cudaGraphDestroy(self._graph))
        self._graph = self._graph_exec = self._graph_key = None

    def _close(self) -> None:
        """Free the buffers, pinned memory, CUDA graph and stream; drop the context and engine."""
        for held in self._buffers.values():
            self._free(held)
        self._buffers.clear()
        self._drop_graph()
        check_cuda(self.cudart.cudaStreamDestroy(self.stream))
        self.context = self.engine = self.runtime = None
