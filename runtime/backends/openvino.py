"""OpenVINO on the CPU as a backend: the FP32 graphs, computed in bf16 where the CPU has it natively.

OpenVINO reads our ONNX graphs directly. On CPUs with native bf16 (AVX512_BF16 or AMX) its
bf16 inference precision runs the convolutions at about twice onnxruntime's speed (measured
in ``adainrt bench``); elsewhere it computes in f32. Compiled models are cached under the
adainrt cache (``CACHE_DIR``), so a second start skips most of the compilation.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from adainrt.errors import BackendUnavailable, ModelError, OutputUnwritable
from adainrt.fileio import check_folder_path
from adainrt.hardware import NATIVE_BF16_FLAGS, isa_cap, native_bf16
from adainrt.runtime.backend import Backend, CacheFolder, RunnerBase, Value, register_backend

#: Our precision -> OpenVINO's INFERENCE_PRECISION_HINT.
_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: OpenVINO's compiled models (`adainrt cache` lists and clears it).
CACHE = CacheFolder("openvino", "OpenVINO's compiled models; the next start compiles again (seconds)")


def default_precision() -> tuple[str, str]:
    flag = native_bf16()
    if flag:
        return "bf16", f"the CPU has native bf16 ({flag})"
    if cap := isa_cap():
        return "fp32", f"no native bf16 within ONEDNN_MAX_CPU_ISA={cap}"
    return "fp32", f"the CPU has no native bf16 (none of {', '.join(NATIVE_BF16_FLAGS)})"


def _core() -> Any:
    """One OpenVINO Core per cache folder (the folder follows $ADAINRT_CACHE as it is now)."""
    return _core_caching_in(str(CACHE.path()))


def precision_why_not(precision: str) -> str | None:
    """bf16 only with native bf16: OpenVINO would emulate it slowly, or crash where ONEDNN_MAX_CPU_ISA
    caps bf16 away."""
    if precision == "bf16" and not native_bf16():
        return f"openvino runs bf16 only with native bf16, and {default_precision()[1]}: use --precision fp32"
    return None


@functools.cache
def _core_caching_in(folder: str) -> Any:
    """A Core caching compiled models in ``folder``; where that cannot be written (a read-only
    $ADAINRT_CACHE), one without the cache, said once: OpenVINO would fail writing it at the first
    compile, and the cache only saves time."""
    import openvino as ov

    core = ov.Core()
    try:
        check_folder_path(Path(folder))
        Path(folder).mkdir(parents=True, exist_ok=True)
    except (OutputUnwritable, OSError) as exc:
        print(f"adainrt: OpenVINO runs without its compile cache (each start compiles again): {exc}",
              file=sys.stderr)
        return core
    core.set_property({"CACHE_DIR": folder})
    return core


class OpenVINORunner(RunnerBase):
    """One ONNX graph compiled for OpenVINO's CPU plugin, with one infer request."""

    def __init__(self, path: str | Path, precision: str = "fp32", hint: str = "LATENCY"):
        self.path = Path(path)
        if precision not in _HINTS:
            raise BackendUnavailable(f"openvino computes in {', '.join(_HINTS)}, not {precision}")
        if why := precision_why_not(precision):
            raise BackendUnavailable(why)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no such ONNX file; create it with `adainrt export`")
        core = _core()
        try:
            model = core.read_model(str(self.path))
            self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": _HINTS[precision],
                                                              "PERFORMANCE_HINT": hint})
        except RuntimeError as exc:
            raise ModelError(f"{self.path}: OpenVINO cannot load it ({openvino_reason(exc)})") from exc
        self.precision = precision
        self.metadata = _metadata(model)
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]
        self.request = self.compiled.create_infer_request()
        self._busy = threading.Lock()  # one infer request: calls from several threads take turns

    def _infer(self, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
        """Host memory in and out: on a CPU, outputs are "kept" where they are anyway. Inputs are read
        in place (no copy in); outputs are copied once out of the request, whose buffers the next call
        reuses, so a result stays valid (the decoder's input then goes in without a copy)."""
        del keep
        arrays = {name: np.ascontiguousarray(feeds[name], dtype=np.float32) for name in self.input_names}
        with self._busy:
            try:
                self.request.infer(arrays, share_inputs=True)
            except RuntimeError as exc:  # OpenVINO's failures (memory, shapes) as a one-line error
                raise ModelError(f"{self.path}: OpenVINO failed to run it ({openvino_reason(exc)})") from exc
            return {name: self.request.get_tensor(name).data.copy() for name in self.output_names}

    def _close(self) -> None:
        self.request = self.compiled = None


def openvino_reason(exc: BaseException) -> str:
    """The line of an OpenVINO error that says why: its messages open with "Exception from
    src/...cpp:N:" lines (where, not why) and end with the cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    causes = [line for line in lines if not line.startswith("Exception from ")]
    return (causes or lines or [type(exc).__name__])[-1]


def _metadata(model: Any) -> dict[str, str]:
    """The ONNX metadata_props as OpenVINO keeps them (rt_info ``framework`` section)."""
    try:
        framework = model.get_rt_info(["framework"]).value
    except RuntimeError:
        return {}
    return {str(k): str(v) for k, v in framework.items()} if isinstance(framework, dict) else {}


def _probe() -> str | None:
    if importlib.util.find_spec("openvino") is None:
        return "the openvino package is not installed (pip install openvino)"
    return None


def _libraries() -> dict[str, str]:
    try:
        return {"openvino": importlib.metadata.version("openvino")}
    except importlib.metadata.PackageNotFoundError:
        return {"openvino": "absent (pip install openvino)"}


register_backend(Backend(
    name="openvino", summary="OpenVINO on the CPU (bf16 where the CPU has it natively, else f32)", device="cpu",
    precisions=("fp32", "bf16"), preference=50, probe=_probe, open=OpenVINORunner, default_precision=default_precision,
    bench_precisions=("fp32", "bf16") if native_bf16() else ("fp32",), precision_why_not=precision_why_not,
    cache=(CACHE,), libraries=_libraries,
    reference_rank=1,  # computed in f32 it is the FP32 reference where onnxruntime is not installed
))
