"""What the cache folder holds, and clearing it.

Everything adainrt puts there is derived and made again on demand (graphs exported from the
weights, OpenVINO's compiled models, TensorRT engines), except stored styles, which are the user's
and are managed by `adainrt style`. Nothing prunes the derived parts by itself: each new decoder
or onnxruntime/OpenVINO version adds entries beside the old ones, so `adainrt cache list` shows
what they weigh and `adainrt cache clear` frees them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from adainrt.errors import AdainrtError
from adainrt.fileio import cache_root

#: The exporter's part of the cache; the backends' parts (compiled models, engines) are what each
#: registered backend declares (:attr:`adainrt.runtime.backend.Backend.cache`).
EXPORTED = ("onnx", "graphs exported from weights; exported again on first use (needs torch)")


@dataclass(frozen=True)
class CachePart:
    name: str
    path: str
    about: str
    files: int
    bytes: int
    clearable: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _usage(folder: Path) -> tuple[int, int]:
    files = size = 0
    for parent, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += (Path(parent) / name).stat().st_size
                files += 1
            except OSError:  # removed meanwhile
                continue
    return files, size


def derived() -> dict[str, str]:
    """The derived parts of the cache folder, {name: what it holds and what clearing it costs later}:
    the exported graphs, then every registered backend's folders (a new backend's show up here)."""
    from adainrt.runtime.backend import cache_folders

    return dict([EXPORTED, *((folder.name, folder.about) for folder in cache_folders())])


def cache_parts() -> list[CachePart]:
    """Every derived part (present or not) and the style bank when it lives in the cache folder."""
    from adainrt.runtime.style_bank import default_bank_dir

    root = cache_root()
    parts = [CachePart(name, str(root / name), about, *_usage(root / name), clearable=True)
             for name, about in derived().items()]
    styles = default_bank_dir()
    parts.append(CachePart("styles", str(styles), "stored styles (yours: `adainrt style remove NAME` removes one)",
                           *_usage(styles), clearable=False))
    return parts


def clear(names: Sequence[str] = (), dry_run: bool = False) -> list[CachePart]:
    """Remove the derived parts named (all of them when none is); stored styles are never touched.

    Returns what was (or, with ``dry_run``, would be) removed.
    """
    from adainrt.runtime.style_bank import default_bank_dir

    parts = derived()
    unknown = sorted(set(names) - set(parts))
    if unknown:
        raise AdainrtError(f"no cache part {', '.join(unknown)}: choose from {', '.join(parts)} "
                           "(stored styles are removed with `adainrt style remove NAME`)")
    chosen = [part for part in cache_parts() if part.clearable and (not names or part.name in names)]
    present = [part for part in chosen if Path(part.path).exists()]
    bank = default_bank_dir().resolve()
    for part in present:
        if bank.is_relative_to(Path(part.path).resolve()):
            raise AdainrtError(f"{part.path} holds the style bank ({bank}, $ADAINRT_STYLES): clearing it would "
                               "remove stored styles; move the bank out of it first")
    if dry_run:
        return present
    removed: list[CachePart] = []
    for part in present:
        try:
            _empty(Path(part.path))
        except OSError as exc:
            done = f" (removed before it: {', '.join(p.name for p in removed)})" if removed else ""
            raise AdainrtError(f"cannot clear {part.path}: {exc.strerror or exc}{done}") from exc
        removed.append(part)
    return removed


def _empty(folder: Path) -> None:
    """Remove a part: the folder, or, where it is a link (moved to another disk), what it holds."""
    if not folder.is_symlink():
        shutil.rmtree(folder)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
