"""AN EMULATION of exactly the tensorrt and cuda-python calls adainrt makes, for testing the TensorRT
runner's logic on a CPU. It is NOT GPU verification: engines are onnxruntime CPU sessions of the
same ONNX file, device memory is bounds-checked host buffers, and a CUDA graph replays the
enqueues it captured. It counts allocations, frees, copies by direction, executions and graphs,
so tests can assert that nothing leaks and what crosses between host and device.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from adainrt.contract import GRAPHS, concrete_shape

VERSION = "10.13.0.emulated"
GPU = ("Emulated GPU (not real)", 9, 0)


class EmulatedCuda:
    """cuda.bindings.runtime as the runner calls it: every function returns (error, value...)."""

    class cudaMemcpyKind:  # noqa: N801 (cuda-python's names)
        cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

    class cudaStreamCaptureMode:  # noqa: N801
        cudaStreamCaptureModeGlobal = 0

    def __init__(self) -> None:
        self.device: dict[int, bytearray] = {}
        self.host: dict[int, ctypes.Array] = {}
        self.streams: set[int] = set()
        self.graphs: dict[int, list] = {}
        self.execs: dict[int, list] = {}
        self.capturing: dict[int, list] = {}
        self.counts: Counter = Counter()
        self._next = 0x1000

    def _handle(self) -> int:
        self._next += 0x1000
        return self._next

    def _device_view(self, ptr: int, nbytes: int) -> memoryview:
        base = max((p for p in self.device if p <= ptr), default=None)
        if base is None or ptr + nbytes > base + len(self.device[base]):
            raise AssertionError(f"device access out of bounds: {ptr:#x}+{nbytes}")
        return memoryview(self.device[base])[ptr - base: ptr - base + nbytes]

    # memory
    def cudaMalloc(self, nbytes):  # noqa: N802
        ptr = self._handle() << 20
        self.device[ptr] = bytearray(nbytes)
        self.counts["malloc"] += 1
        return 0, ptr

    def cudaFree(self, ptr):  # noqa: N802
        if ptr not in self.device:
            return 1, None
        del self.device[ptr]
        self.counts["free"] += 1
        return (0,)

    def cudaMallocHost(self, nbytes):  # noqa: N802
        buffer = (ctypes.c_char * nbytes)()
        self.host[ctypes.addressof(buffer)] = buffer
        return 0, ctypes.addressof(buffer)

    def cudaFreeHost(self, ptr):  # noqa: N802
        return (0,) if self.host.pop(ptr, None) is not None else (1,)

    def cudaMemcpyAsync(self, dst, src, nbytes, kind, stream):  # noqa: N802
        assert stream in self.streams
        if kind == self.cudaMemcpyKind.cudaMemcpyHostToDevice:
            self._device_view(dst, nbytes)[:] = ctypes.string_at(src, nbytes)
            self.counts["h2d"] += 1
        elif kind == self.cudaMemcpyKind.cudaMemcpyDeviceToHost:
            ctypes.memmove(dst, bytes(self._device_view(src, nbytes)), nbytes)
            self.counts["d2h"] += 1
        else:
            self._device_view(dst, nbytes)[:] = self._device_view(src, nbytes)
            self.counts["d2d"] += 1
        return (0,)

    # streams and graphs
    def cudaStreamCreate(self):  # noqa: N802
        stream = self._handle()
        self.streams.add(stream)
        return 0, stream

    def cudaStreamDestroy(self, stream):  # noqa: N802
        self.streams.discard(stream)
        return (0,)

    def cudaStreamSynchronize(self, stream):  # noqa: N802
        return (0,)

    def cudaStreamBeginCapture(self, stream, mode):  # noqa: N802
        self.capturing[stream] = []
        return (0,)

    def cudaStreamEndCapture(self, stream):  # noqa: N802
        graph = self._handle()
        self.graphs[graph] = self.capturing.pop(stream)
        self.counts["capture"] += 1
        return 0, graph

    def cudaGraphInstantiate(self, graph, flags):  # noqa: N802
        handle = self._handle()
        self.execs[handle] = self.graphs[graph]
        return 0, handle

    def cudaGraphLaunch(self, graph_exec, stream):  # noqa: N802
        for work in self.execs[graph_exec]:
            work()
        self.counts["launch"] += 1
        return (0,)

    def cudaGraphExecDestroy(self, graph_exec):  # noqa: N802
        return (0,) if self.execs.pop(graph_exec, None) is not None else (1,)

    def cudaGraphDestroy(self, graph):  # noqa: N802
        return (0,) if self.graphs.pop(graph, None) is not None else (1,)

    def cudaGetDeviceProperties(self, device):  # noqa: N802
        name, major, minor = GPU
        return 0, types.SimpleNamespace(name=name.encode(), major=major, minor=minor)

    def cudaGetErrorString(self, err):  # noqa: N802
        return 0, b"emulated CUDA error"

    def live(self) -> dict[str, int]:
        return {"device": len(self.device), "host": len(self.host), "streams": len(self.streams),
                "graphs": len(self.graphs), "graph_execs": len(self.execs)}


def _graph_of(onnx_path: str) -> str:
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return session.get_modelmeta().custom_metadata_map["adainrt_graph"]


class _Engine:
    def __init__(self, cuda: EmulatedCuda, onnx_path: str):
        self.cuda = cuda
        self.session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self.contract = GRAPHS[self.session.get_modelmeta().custom_metadata_map["adainrt_graph"]]
        self.names = [t.name for t in (*self.contract.inputs, *self.contract.outputs)]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, index):
        return self.names[index]

    def get_tensor_mode(self, name):
        return TensorIOMode.INPUT if name in self.contract.input_names else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name):
        return DataType.FLOAT

    def create_execution_context(self):
        return _Context(self)


class _Context:
    def __init__(self, engine: _Engine):
        self.engine, self.shapes, self.addresses = engine, {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name, address):
        self.addresses[name] = int(address)
        return True

    def _sizes(self) -> tuple[tuple[int, int], tuple[int, int], int]:
        if "content" in self.shapes:
            content = self.shapes["content"][2:]
            batch = self.shapes["content"][0]
        elif "content_features" in self.shapes:
            batch, _c, h, w = self.shapes["content_features"]
            content = (h * 8, w * 8)
        else:
            content, batch = (32, 32), 1
        return content, self.shapes.get("style", (1, 3, 0, 0))[2:], batch

    def get_tensor_shape(self, name):
        content, style, batch = self._sizes()
        return concrete_shape(self.engine.contract.tensor(name), content, style, batch)

    def execute_async_v3(self, stream):
        cuda = self.engine.cuda

        def work() -> None:
            feeds = {}
            for name in self.engine.contract.input_names:
                shape = self.shapes[name]
                raw = cuda._device_view(self.addresses[name], int(np.prod(shape)) * 4)
                feeds[name] = np.frombuffer(raw, np.float32).reshape(shape).copy()
            outputs = self.engine.session.run(None, feeds)
            for name, value in zip(self.engine.contract.output_names, outputs):
                cuda._device_view(self.addresses[name], value.nbytes)[:] = np.ascontiguousarray(value).tobytes()
            cuda.counts["execute"] += 1

        if stream in cuda.capturing:
            cuda.capturing[stream].append(work)
        else:
            work()
        return True


class TensorIOMode:
    INPUT, OUTPUT = "input", "output"


class DataType:
    FLOAT, HALF = "float", "half"


def tensorrt_module(cuda: EmulatedCuda) -> types.ModuleType:
    """A ``tensorrt`` module with what adainrt calls: Logger, Runtime, Builder, OnnxParser, ..."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = VERSION
    trt.TensorIOMode, trt.DataType = TensorIOMode, DataType
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level=2: None})
    trt.NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=1)
    trt.MemoryPoolType = types.SimpleNamespace(WORKSPACE=0)
    trt.BuilderFlag = types.SimpleNamespace()

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data: bytes):
            return _Engine(cuda, json.loads(data)["onnx"])

    class Network:
        def __init__(self):
            self.path, self.num_inputs, self.num_outputs = None, 0, 0

        def get_input(self, i):
            spec = GRAPHS[_graph_of(self.path)].inputs[i]
            return types.SimpleNamespace(name=spec.name, shape=[-1 if isinstance(d, str) else d for d in spec.shape],
                                         dtype=DataType.FLOAT)

        def get_output(self, i):
            spec = GRAPHS[_graph_of(self.path)].outputs[i]
            return types.SimpleNamespace(name=spec.name, shape=[-1 if isinstance(d, str) else d for d in spec.shape],
                                         dtype=DataType.FLOAT)

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.num_errors = network, 0

        def parse_from_file(self, path):
            contract = GRAPHS[_graph_of(path)]
            self.network.path = path
            self.network.num_inputs, self.network.num_outputs = len(contract.inputs), len(contract.outputs)
            return True

    class Config:
        def set_memory_pool_limit(self, pool, size):
            pass

        def add_optimization_profile(self, profile):
            pass

        def create_timing_cache(self, data):
            return types.SimpleNamespace(serialize=lambda: b"emulated timing cache")

        def set_timing_cache(self, cache, ignore_mismatch):
            return True

    class Builder:
        def __init__(self, logger):
            cuda.counts["builds"] += 0

        def create_network(self, flags):
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return types.SimpleNamespace(set_shape=lambda name, lo, opt, hi: None)

        def build_serialized_network(self, network, config):
            cuda.counts["builds"] += 1
            return json.dumps({"onnx": str(Path(network.path).resolve())}).encode()

    trt.Runtime, trt.OnnxParser, trt.Builder = Runtime, OnnxParser, Builder
    return trt


def install(monkeypatch) -> EmulatedCuda:
    """Put the emulated tensorrt and cuda.bindings.runtime in sys.modules for one test."""
    from adainrt.runtime.backends import tensorrt as backend

    cuda = EmulatedCuda()
    cuda_package, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    runtime = types.ModuleType("cuda.bindings.runtime")
    for name in dir(cuda):
        if name.startswith("cuda"):
            setattr(runtime, name, getattr(cuda, name))
    cuda_package.bindings, bindings.runtime = bindings, runtime
    for name, module in {"tensorrt": tensorrt_module(cuda), "cuda": cuda_package, "cuda.bindings": bindings,
                         "cuda.bindings.runtime": runtime}.items():
        monkeypatch.setitem(sys.modules, name, module)
    from adainrt.runtime import backend as registry

    backend.tensorrt_ready.cache_clear()
    # no nvidia-smi here: the probe is not what these tests test
    monkeypatch.setitem(registry._REGISTRY, "tensorrt", dataclasses.replace(registry.get_backend("tensorrt"),
                                                                           probe=lambda: None))
    return cuda
