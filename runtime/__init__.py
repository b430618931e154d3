"""Inference over the exported graphs. Needs numpy, pillow and onnxruntime only (never torch)."""

from adainrt.runtime.controls import ControlError, StyleStats, interpolate
from adainrt.runtime.providers import BACKENDS, available_backends, choose_backend
from adainrt.runtime.stylizer import GRAPH_FILES, InvalidArgument, OrtGraph, Stylizer, check_alpha

__all__ = ["BACKENDS", "GRAPH_FILES", "ControlError", "InvalidArgument", "OrtGraph", "StyleStats", "Stylizer",
           "available_backends", "check_alpha", "choose_backend", "interpolate"]
