"""Exceptions with messages a user can act on: what was wrong, with which input, and the fix."""


class AdainrtError(Exception):
    """Base class: the CLI prints these as one clean message instead of a traceback."""


class WeightsError(AdainrtError):
    """A weight file is missing, unreadable, of the wrong layout, or paired with the wrong encoder."""


class ImageError(AdainrtError):
    """An input image is unreadable, too small or too large."""


class ModelError(AdainrtError):
    """An ONNX graph or engine is missing, unreadable or does not fit the request."""


class BackendUnavailable(AdainrtError):
    """The requested backend (execution provider, TensorRT, CUDA) is not present here."""
