"""What the CLI's commands share: option declarations, parameter types, error display, progress
bars, and the exporter handed to the runtime as its graph source. Declared once here; the
commands (adainrt/cli.py and this package's modules) only parse, call one library function
and print.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from adainrt.contract import EXECUTION_PRECISIONS, PRECISIONS
from adainrt.errors import AdainrtError
from adainrt.runtime.backend import backend_names
from adainrt.spec import VARIANTS


def clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show our errors as one line (``Error: ...``, exit 1) instead of a traceback, with the flag that
    helps where the error has one (``cli_hint``)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdainrtError as exc:
            raise click.ClickException(f"{exc}; {exc.cli_hint}" if exc.cli_hint else str(exc)) from exc
        except FileExistsError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # a read-only or full disk, an unreadable folder: the file and the reason
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from exc

    return wrapper


def say(message: str) -> None:
    click.echo(message, err=True)


@contextlib.contextmanager
def pair_bar(label: str) -> Any:
    """A progress bar on stderr fed (done, total), opened at its first call, when the total is known."""
    with contextlib.ExitStack() as stack:
        bars: list = []

        def done(count: int, total: int) -> None:
            if not bars:
                bars.append(stack.enter_context(click.progressbar(length=total, label=label, file=sys.stderr,
                                                                  show_pos=True)))
            bars[0].update(count - bars[0].pos)

        yield done


@contextlib.contextmanager
def item_bar(label: str, total: int) -> Any:
    """A progress bar on stderr whose value counts one finished item per call."""
    with click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True) as shown:
        yield lambda: shown.update(1)


def job_events() -> Any:
    """A job's messages on stderr and its progress as click progress bars."""
    from adainrt.runtime.stylize_job import JobEvents

    return JobEvents(say, item_bar)


def exported_graphs() -> Callable[..., Path]:
    """The exporter's cache, handed to the runtime as its graph source (the runtime never imports the
    exporter; adainrt.export.cache itself loads torch only when it must export)."""
    from adainrt.export.cache import cached_model_dir

    return cached_model_dir


weights_options = [
    click.option("--encoder", type=click.Path(dir_okay=False, path_type=Path),
                 help="Encoder weights (.safetensors from `adainrt import-weights`). "
                      "Default: the embedded VGG-19."),
    click.option("--decoder", type=click.Path(dir_okay=False, path_type=Path),
                 help="Decoder weights (.safetensors). Default: the decoder bundled with adainrt."),
]
variant_option = click.option(
    "--variant", type=click.Choice(list(VARIANTS)), default=None,
    help="Network variant: full (the paper's VGG-19 and its decoder) or lite (a quarter of the channels, "
         "distilled from full: about 16x fewer operations, for ordinary CPUs; `adainrt info` lists their "
         "cost). Default: the model folder's or the weights' own, full without either.")
weights_options.append(variant_option)

PRECISION_HELP = ("fp16: graphs with FP16 weights and activations, AdaIN statistics in FP32, FP32 inputs and "
                  "outputs (for GPUs: TensorRT strongly typed builds, CUDA). fp32: the reference.")
precision_option = click.option(
    "--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True, help=PRECISION_HELP)
run_precision_option = click.option(
    "--precision", type=click.Choice(EXECUTION_PRECISIONS), default=None,
    help=PRECISION_HELP + " bf16: the FP32 graphs computed in bf16 (openvino on CPUs with native bf16). "
    "Default: the backend's own (tensorrt: fp16; openvino: bf16 where the CPU has it natively; else fp32).")
class BackendChoice(click.Choice):
    """The registered backends (between fixed words such as auto or torch), read from the registry when
    a command parses or shows its help: importing the CLI, or `adainrt --help`, imports no backend,
    and a backend module added later is a choice without any change here."""

    def __init__(self, before: tuple[str, ...] = (), after: tuple[str, ...] = ()):
        self.before, self.after = before, after
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return (*self.before, *backend_names(), *self.after)

    @choices.setter
    def choices(self, _value: Any) -> None:
        """click's own __init__ sets the choices; ours are always the registry's."""


backend_option = click.option(
    "--backend", type=BackendChoice(("auto",)), default="auto", show_default=True,
    help="auto: the best backend that can run here, GPU runtimes before CPU ones (`adainrt info` lists "
         "every backend, whether it can run here and why, and the one auto picks).")


def heldout_default() -> Path:
    """train/heldout.txt as installed, found without importing adainrt.train (which imports torch)."""
    import importlib.util

    return Path(importlib.util.find_spec("adainrt.train").submodule_search_locations[0]) / "heldout.txt"


def with_options(options: list[Callable]) -> Callable:
    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


class FiniteFloat(click.ParamType):
    """A finite number above (or from) a bound: click's FloatRange lets nan and inf through."""

    name = "number"

    def __init__(self, low: float, low_open: bool):
        self.low, self.low_open = low, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number) or number < self.low or (self.low_open and number == self.low):
            self.fail(f"{value!r} is not a finite number {'above' if self.low_open else 'of at least'} {self.low:g}",
                      param, ctx)
        return number


def overwrite_option(what: str) -> Callable:
    """``--overwrite``: replace ``what`` (outputs are never replaced silently)."""
    return click.option("--overwrite", is_flag=True, help=f"Replace {what}.")


def model_option(about: str) -> Callable:
    """``--model DIR``: a folder of graphs from `adainrt export`; ``about``: what it is for here."""
    return click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), help=about)


def api_key_option(what: str) -> Callable:
    """``--api-key`` (or ``$ADAINRT_API_KEY``, so the key stays out of shell history); ``what``: its role here."""
    return click.option("--api-key", envvar="ADAINRT_API_KEY", help=f"{what} (or set $ADAINRT_API_KEY).")


json_option = click.option("--json", "as_json", is_flag=True, help="Print as JSON (for machines).")
