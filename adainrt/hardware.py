"""What the machine is and can do, read without torch: speed claims and precision choices name it.

The one GPU probe is here too (:func:`gpu_name`, :func:`gpu_why_not`): every backend that needs an
NVIDIA GPU, `adainrt info` and the tests ask it, so "is there a GPU" has one answer everywhere.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess

#: CPU flags (Linux /proc/cpuinfo names) that give native bf16 arithmetic.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: The flags this project's speed depends on, as benchmarks report them.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
#: oneDNN's ISA levels (the values of ONEDNN_MAX_CPU_ISA, aliases at one rank), lowest first.
#: OpenVINO's CPU plugin (and torch) honour that cap in their oneDNN kernels: an AVX-512 machine
#: then runs their convolutions as an AVX2-only CPU would. onnxruntime's CPU provider ignores it.
ONEDNN_ISA_RANKS = {name: rank for rank, names in enumerate((
    ("SSE41",), ("AVX",), ("AVX2",), ("AVX2_VNNI",), ("AVX2_VNNI_2",), ("AVX512_CORE",), ("AVX512_CORE_VNNI",),
    ("AVX512_CORE_BF16",), ("AVX512_CORE_FP16", "AVX10_1_512"), ("AVX512_CORE_AMX", "AVX10_1_512_AMX"),
    ("AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16"))) for name in names}
#: The oneDNN ISA level a native-bf16 flag needs.
_BF16_ISA = {"avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX512_CORE_AMX"}


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux names them (empty where /proc/cpuinfo is absent)."""
    return set((_cpuinfo_field("flags") or "").split())


def isa_cap() -> str | None:
    """The ISA level ONEDNN_MAX_CPU_ISA (or its old name DNNL_MAX_CPU_ISA) caps OpenVINO's kernels
    at, or None where no known level is set (oneDNN ignores unknown or padded values, and so do we)."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    return value if value in ONEDNN_ISA_RANKS else None


def native_bf16() -> str | None:
    """The flag that gives this CPU native bf16 within the ISA cap, or None."""
    flags, cap = cpu_flags(), isa_cap()
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags
                 and (cap is None or ONEDNN_ISA_RANKS[cap] >= ONEDNN_ISA_RANKS[_BF16_ISA[flag]])), None)


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_cpu() -> str:
    """The CPU model, its thread count and the flags speed depends on (bf16, AMX, AVX-512, AVX2)."""
    model = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    flags = cpu_flags()
    shown = [f for f in REPORTED_FLAGS if f in flags]
    cap = isa_cap()
    capped = f"; oneDNN (OpenVINO, torch) capped at {cap} by ONEDNN_MAX_CPU_ISA, onnxruntime not" if cap else ""
    return f"{model}, {cpu_threads()} CPU threads, flags: {' '.join(shown) or 'unknown'}{capped}"


@functools.cache
def gpu_name() -> str | None:
    """The first NVIDIA GPU as nvidia-smi names it (with its compute capability), or None (no driver,
    no GPU). Asked once per process: the answer does not change while it runs."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def gpu_why_not() -> str | None:
    """None when an NVIDIA GPU and its driver are here, else why not (the reason backends and tests give)."""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU driver (nvidia-smi) found"
    if gpu_name() is None:
        return "nvidia-smi lists no NVIDIA GPU"
    return None
