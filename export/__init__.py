"""ONNX export of the AdaIN network (needs torch and onnx).

The names below load on first use, so ``adainrt.export.cache`` can find graphs exported
earlier without importing torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FORMS", "ExportResult", "export_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from adainrt.export import onnx_export

        return getattr(onnx_export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
