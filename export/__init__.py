"""ONNX export of the AdaIN network (needs torch and onnx)."""

from adainrt.export.onnx_export import FORM_GRAPHS, FORMS, SPECS, ExportResult, export_model

__all__ = ["FORMS", "FORM_GRAPHS", "SPECS", "ExportResult", "export_model"]
