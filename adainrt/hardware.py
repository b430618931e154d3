"""What the CPU is and can do, read without torch: speed claims and precision choices name it."""

from __future__ import annotations

import os
import platform

#: CPU flags (Linux /proc/cpuinfo names) that give native bf16 arithmetic.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
#: The flags this project's speed depends on, as benchmarks report them.
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


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


def native_bf16() -> str | None:
    """The flag that gives this CPU native bf16, or None."""
    flags = cpu_flags()
    return next((flag for flag in NATIVE_BF16_FLAGS if flag in flags), None)


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def describe_cpu() -> str:
    """The CPU model, its thread count and the flags speed depends on (bf16, AMX, AVX-512, AVX2)."""
    model = _cpuinfo_field("model name") or platform.processor() or platform.machine()
    flags = cpu_flags()
    shown = [f for f in REPORTED_FLAGS if f in flags]
    return f"{model}, {cpu_threads()} CPU threads, flags: {' '.join(shown) or 'unknown'}"
