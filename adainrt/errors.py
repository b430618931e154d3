"""Exceptions with messages a user can act on: what was wrong, with which input, and the fix."""

from __future__ import annotations


class AdainrtError(Exception):
    """Base class: the CLI prints these as one clean message instead of a traceback.

    Messages speak of the library's own terms; ``cli_hint`` (set with :meth:`hinted`) is what
    the CLI adds after it, naming its flags (a server or a script shows the message alone).
    """

    cli_hint: str = ""

    def hinted(self, hint: str) -> AdainrtError:
        self.cli_hint = hint
        return self


class WeightsError(AdainrtError):
    """A weight file is missing, unreadable, of the wrong layout, or paired with the wrong encoder."""


class ImageError(AdainrtError):
    """An input image is unreadable, too small or too large."""


class ModelError(AdainrtError):
    """An ONNX graph or engine is missing, unreadable or does not fit the request."""


class BackendUnavailable(AdainrtError):
    """The requested backend (execution provider, TensorRT, CUDA) is not present here."""


class OutputUnwritable(AdainrtError):
    """An output cannot be written where it should go (a read-only or full disk, a folder not ours,
    a file in the way): the machine's state, not the request's (a server answers 500)."""

    cli_hint = "write somewhere else, or make room or permission there"


class OutputExists(AdainrtError, FileExistsError):
    """An output is there already and replacing it was not allowed (the CLI's --overwrite allows it)."""

    def __init__(self, path: object, what: str = "", count: int = 1):
        super().__init__(f"{what or path} already exist{'s' if count == 1 else ''}")
        self.path = path
        self.cli_hint = f"pass --overwrite to replace {'it' if count == 1 else 'them'}"


def interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's preemption, ``docker stop``, systemd, kill) raises KeyboardInterrupt in
    the main thread, so a long command stops as cleanly as on Ctrl-C: a run checkpoints, a server
    shuts Ray down."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
