"""Inference over the exported graphs. Needs numpy, pillow and onnxruntime only (never torch)."""

from adainrt.runtime.controls import ControlError, StyleStats, interpolate
from adainrt.runtime.providers import BACKENDS, available_backends, choose_backend
from adainrt.runtime.stylizer import GRAPH_NAMES, InvalidArgument, OrtGraph, Stylizer, check_alpha, graph_file

__all__ = ["BACKENDS", "GRAPH_NAMES", "ControlError", "InvalidArgument", "OrtGraph", "StyleStats", "Stylizer",
           "available_backends", "check_alpha", "choose_backend", "graph_file", "interpolate"]
