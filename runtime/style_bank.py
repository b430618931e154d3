"""A bank of named styles stored as their relu4_1 statistics (512 means + 512 stds).

Stylizing with a stored style skips the style encoder entirely. Each entry records the
encoder it was computed with (statistics of one encoder mean nothing to another), the
source image's SHA-256 and the style size used. Files: NAME.npz (arrays) + NAME.json.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adainrt.errors import AdainrtError, OutputExists
from adainrt.fileio import atomic_write_bytes, cache_root
from adainrt.runtime.controls import StyleStats

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class StyleBankError(AdainrtError):
    """A style name is invalid, unknown, already taken, or made with another encoder."""


@dataclass(frozen=True)
class StoredStyle:
    name: str
    stats: StyleStats
    info: dict


def default_bank_dir() -> Path:
    """$ADAINRT_STYLES, else the cache folder's styles/."""
    env = os.environ.get("ADAINRT_STYLES")
    return Path(env) if env else cache_root() / "styles"


class StyleBank:
    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_bank_dir()

    def _paths(self, name: str) -> tuple[Path, Path]:
        if not _NAME.fullmatch(name):
            raise StyleBankError(f"style name {name!r}: use letters, digits, '_', '-', '.' (max 64), "
                                 "starting with a letter or digit")
        return self.folder / f"{name}.npz", self.folder / f"{name}.json"

    def check_name(self, name: str, overwrite: bool = False) -> None:
        """A valid name, free unless replacing is allowed (checked before any encoding)."""
        arrays, _meta = self._paths(name)
        if arrays.exists() and not overwrite:
            raise OutputExists(arrays, f"style {name!r} in {self.folder}")

    def add(self, name: str, stats: StyleStats, info: dict, overwrite: bool = False) -> Path:
        self.check_name(name, overwrite)
        arrays, meta = self._paths(name)
        buffer = io.BytesIO()
        np.savez(buffer, mean=stats.mean.astype(np.float32), std=stats.std.astype(np.float32))
        record = {"name": name, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  **info}
        atomic_write_bytes(arrays, buffer.getvalue())
        atomic_write_bytes(meta, json.dumps(record, indent=1, sort_keys=True).encode())
        return arrays

    def get(self, name: str, encoder_hash: str | None = None) -> StoredStyle:
        arrays, meta = self._paths(name)
        if not arrays.is_file():
            known = ", ".join(self.names()) or "none"
            raise StyleBankError(f"no style named {name!r} in {self.folder} (stored: {known}); "
                                 f"add it with `adainrt style add {name} IMAGE`")
        with np.load(arrays) as data:
            stats = StyleStats(data["mean"], data["std"])
        info = json.loads(meta.read_text()) if meta.is_file() else {}
        stored_with = info.get("encoder_hash")
        if encoder_hash and stored_with and stored_with != encoder_hash:
            raise StyleBankError(f"style {name!r} was computed with encoder {stored_with}, but the model in "
                                 f"use has encoder {encoder_hash}; add it again for this model")
        return StoredStyle(name, stats, info)

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.npz")) if self.folder.is_dir() else []

    def entries(self) -> list[dict]:
        return [json.loads((self.folder / f"{n}.json").read_text()) for n in self.names()
                if (self.folder / f"{n}.json").is_file()]

    def remove(self, name: str) -> None:
        arrays, meta = self._paths(name)
        if not arrays.exists():
            raise StyleBankError(f"no style named {name!r} in {self.folder}")
        arrays.unlink()
        meta.unlink(missing_ok=True)
