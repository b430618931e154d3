"""Inference over the exported graphs on any registered backend: numpy, pillow, onnxruntime (never torch)."""

from adainrt.runtime.backend import (
           Backend,
           BackendStatus,
           Runner,
           available,
           backend_names,
           choose,
           get_backend,
           open_graph,
           register_backend,
           registered,
           statuses,
)
from adainrt.runtime.controls import ControlError, StyleStats, interpolate
from adainrt.runtime.stylizer import ContentSmoother, InvalidArgument, Stylizer, StylizeRequest, check_alpha

__all__ = ["Backend", "BackendStatus", "ContentSmoother", "ControlError", "InvalidArgument", "Runner", "StyleStats",
           "StylizeRequest", "Stylizer", "available", "backend_names", "check_alpha", "choose", "get_backend",
           "interpolate", "open_graph", "register_backend", "registered", "statuses"]
