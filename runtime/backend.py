"""The backend protocol and registry: what every runtime backend is, and how one is chosen.

Modelled on Polygraphy's runners: a :class:`Backend` says whether it can run here (and why
not), which precisions and device it runs, how to *prepare* a graph (build an engine: slow,
explicit, cached) and how to *open* one (load only) as a :class:`Runner`. A runner's
``infer(feeds)`` returns its outputs by name, can keep outputs on the device for the next
graph, and ``close()`` (or leaving its ``with`` block) frees what it allocated.

Each backend is one module (or package) in :mod:`adainrt.runtime.backends` that calls
:func:`register_backend`; the registry imports them all, so the CLI's choices, ``bench``,
``info``, ``cache`` and the :class:`~adainrt.runtime.stylizer.Stylizer` list backends from here
and a new backend touches no dispatch list. Everything a backend knows is declared with it: its
cache folders (:func:`cache_folders`), its libraries for ``info`` (:func:`library_versions`),
whether it can be the FP32 reference (:func:`reference_backend`). ``auto`` is the usable backend
of lowest ``preference``. Runners derive from :class:`RunnerBase`, which checks state and feeds
before the runner's own ``_infer``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from adainrt.contract import check_execution_precision
from adainrt.errors import BackendUnavailable, ModelError
from adainrt.fileio import cache_root

#: What `adainrt evaluate` scores by default: the network as trained, in PyTorch eager (FP32), rather
#: than a deployment runtime; a registry preference like ``automatic`` and ``reference_rank``.
SCORING_BACKEND = "torch"
#: What runners take and give: numpy arrays, or a backend's own device values (kept outputs).
Value = Any


@runtime_checkable
class Runner(Protocol):
    """One loaded graph on one backend."""

    path: Path
    input_names: list[str]
    output_names: list[str]
    metadata: dict[str, str]

    def infer(self, feeds: Mapping[str, Value], keep: Collection[str] = ()) -> dict[str, Value]:
        """Run once. Outputs named in ``keep`` stay where the backend computed them (another
        runner of the same backend takes them as inputs); the others come back as numpy."""
        ...

    def close(self) -> None:
        """Free everything the runner allocated; it cannot run afterwards."""
        ...


class RunnerBase:
    """What every runner shares, Polygraphy's template: :meth:`infer` checks the runner is open and
    every input is fed, then calls the runner's own :meth:`_infer`; :meth:`close` frees once, through
    the runner's own :meth:`_close`. A runner never repeats these checks itself."""

    path: Path
    input_names: list[str]
    output_names: list[str]
    metadata: dict[str, str]
    _closed = False

    def __enter__(self) -> RunnerBase:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def infer(self, feeds: Mapping[str, Value], keep: Collection[str] = ()) -> dict[str, Value]:
        """Run once (see :class:`Runner`): refused when closed or when an input is missing."""
        if self._closed:
            raise ModelError(f"{self.path}: this runner was closed; open the graph again")
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise ModelError(f"{self.path}: inputs {sorted(missing)} not given")
        return self._infer(feeds, keep)

    def _infer(self, feeds: Mapping[str, Value], keep: Collection[str]) -> dict[str, Value]:
        """The backend's own run, on feeds already checked."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what the runner holds, once; closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def _close(self) -> None:
        """The backend's own freeing (nothing by default)."""


@dataclass(frozen=True)
class CacheFolder:
    """A folder of the cache a backend fills (compiled models, engines): `adainrt cache` lists and
    clears it because the backend declares it, so a new backend's cache shows with no other change."""

    name: str  # the folder's name under the cache root, and the part's name in `adainrt cache`
    about: str  # what it holds and what clearing it costs later

    def path(self) -> Path:
        return cache_root() / self.name


@dataclass(frozen=True)
class Backend:
    """A registered backend. ``probe`` returns None when it can run here, else why not."""

    name: str
    summary: str
    device: str
    precisions: tuple[str, ...]
    preference: int
    probe: Callable[[], str | None]
    open: Callable[[Path, str], Runner]
    prepare: Callable[[Path, str], None] | None = None
    default_precision: Callable[[], tuple[str, str]] | None = None
    #: Precisions `adainrt bench` times beside the default (those that are fast on this machine).
    bench_precisions: tuple[str, ...] = ()
    #: Largest height or width one run takes (engines' profiles); the Stylizer tiles larger content.
    max_side: int | None = None
    #: Most images one run takes (engines' profiles); None: any batch. The Stylizer splits larger ones.
    max_batch: int | None = None
    #: Why one of ``precisions`` cannot run on this machine (openvino's bf16 without native bf16), or None.
    precision_why_not: Callable[[str], str | None] = lambda _precision: None
    #: The cache folders it fills (`adainrt cache list` and `clear` show them).
    cache: tuple[CacheFolder, ...] = ()
    #: The libraries it runs on, for `adainrt info`: {name: version or why absent}. Backends on one
    #: library return the same facts; info shows each once.
    libraries: Callable[[], dict[str, str]] = dict
    #: Rank as the FP32 reference others are compared with (export verification, bench's PSNR): the
    #: usable backend of lowest rank is it. None: never the reference (not deterministic FP32 on the CPU).
    reference_rank: int | None = None
    #: Whether ``auto`` may pick it; False for a backend that is a reference rather than a deployment
    #: runtime (torch eager: bench and evaluate name it, a user may too, auto never does).
    automatic: bool = True

    def why_not(self) -> str | None:
        return self.probe()

    def load(self, path: Path, precision: str) -> Runner:
        """Prepare the graph if this backend builds engines (once, cached), then open it."""
        if self.prepare is not None:
            self.prepare(path, precision)
        return self.open(path, precision)

    def usable_precisions(self) -> tuple[str, ...]:
        """The precisions this backend runs on this machine."""
        return tuple(p for p in self.precisions if self.precision_why_not(p) is None)

    def precision(self, requested: str | None = None) -> tuple[str, str]:
        """(precision, why): the one asked for if this backend runs it, else its default here."""
        if requested is not None:
            check_execution_precision(requested)
            if requested not in self.precisions:
                raise BackendUnavailable(f"backend {self.name} runs {', '.join(self.precisions)}, "
                                         f"not {requested}")
            if why := self.precision_why_not(requested):
                raise BackendUnavailable(why)
            return requested, "requested"
        if self.default_precision is not None:
            return self.default_precision()
        return self.precisions[0], "the backend's default"


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str
    precision: str | None = None  # what it would compute in here (when available), and why
    precision_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "available": self.available, "reason": self.reason}
        if self.available:
            out |= {"precision": self.precision, "precision_reason": self.precision_reason}
        return out


@dataclass(frozen=True)
class Choice:
    """The backend a caller gets, and why (for `adainrt info` and messages)."""

    backend: Backend
    reason: str

    @property
    def name(self) -> str:
        return self.backend.name


_REGISTRY: dict[str, Backend] = {}
_discovered = False


def register_backend(backend: Backend) -> Backend:
    """Add a backend (called at import by its module)."""
    if backend.name in _REGISTRY and _REGISTRY[backend.name] != backend:
        raise ValueError(f"backend {backend.name!r} registered twice")
    _REGISTRY[backend.name] = backend
    return backend


def _discover() -> None:
    """Import every module of adainrt.runtime.backends once: each registers what it offers."""
    global _discovered
    if _discovered:
        return
    from adainrt.runtime import backends as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def registered() -> list[Backend]:
    """Every backend, in auto's order of preference."""
    _discover()
    return sorted(_REGISTRY.values(), key=lambda b: (b.preference, b.name))


def backend_names() -> list[str]:
    return [b.name for b in registered()]


def get_backend(name: str) -> Backend:
    _discover()
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}; choose auto or one of {', '.join(backend_names())}")
    return _REGISTRY[name]


def statuses() -> list[BackendStatus]:
    """Every backend with whether it can run here and why (not)."""
    out = []
    for backend in registered():
        why_not = backend.why_not()
        precision, why = backend.precision() if why_not is None else (None, None)
        out.append(BackendStatus(backend.name, why_not is None, why_not or f"ready: {backend.summary}",
                                 precision, why))
    return out


def available() -> list[str]:
    return [s.name for s in statuses() if s.available]


def choose(requested: str | Choice = "auto", precision: str | None = None) -> Choice:
    """The backend asked for (a clear error when it cannot run here), or for ``auto`` the
    usable one auto prefers that runs ``precision`` (when given), with the reasons the better
    ones were passed over. A :class:`Choice` made before is returned as it is: a job chooses once
    and hands the choice down (to the model folder, then the Stylizer) instead of a name."""
    if isinstance(requested, Choice):
        return requested
    if requested != "auto":
        backend = get_backend(requested)
        why_not = backend.why_not()
        if why_not:
            raise BackendUnavailable(f"backend {requested}: {why_not}; or use --backend auto")
        return Choice(backend, "requested")
    passed_over = {}
    for backend in (b for b in registered() if b.automatic):
        why_not = backend.why_not()
        if why_not is None and precision is not None and precision not in backend.usable_precisions():
            why_not = f"runs {', '.join(backend.usable_precisions())} here, not {precision}"
        if why_not is None:
            skipped = f" (passed over, cannot run here: {', '.join(passed_over)})" if passed_over else ""
            return Choice(backend, backend.summary + skipped)
        passed_over[backend.name] = why_not
    raise BackendUnavailable("no backend can run here: " + "; ".join(f"{k}: {v}" for k, v in passed_over.items()))


def reference_backend() -> Backend:
    """The FP32 reference here: the usable backend of lowest ``reference_rank`` (onnxruntime's CPU
    provider, else OpenVINO in f32), or a clear error naming what would give one."""
    candidates = [b for b in registered() if b.reference_rank is not None]
    for backend in sorted(candidates, key=lambda b: b.reference_rank):
        if backend.why_not() is None:
            return backend
    raise BackendUnavailable("no FP32 reference backend can run here (" + "; ".join(
        f"{b.name}: {b.why_not()}" for b in candidates) + ")")


def cache_folders() -> list[CacheFolder]:
    """Every cache folder the registered backends fill, each once, in the registry's order."""
    folders: dict[str, CacheFolder] = {}
    for backend in registered():
        for folder in backend.cache:
            folders.setdefault(folder.name, folder)
    return list(folders.values())


def library_versions() -> dict[str, str]:
    """What every backend runs on, for `adainrt info`: {library: version or why absent}, each once."""
    libraries: dict[str, str] = {}
    for backend in registered():
        for name, value in backend.libraries().items():
            libraries.setdefault(name, value)
    return libraries


def open_graph(path: str | Path, backend: str = "auto", precision: str | None = None) -> Runner:
    """One graph file on a backend computing in ``precision`` (its default when None), prepared
    first (engines built once, cached) if the backend needs that."""
    chosen = choose(backend, precision).backend
    return chosen.load(Path(path), chosen.precision(precision)[0])
