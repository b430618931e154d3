"""A bank of named styles stored as their relu4_1 statistics (512 means + 512 stds; 128 of each for lite).

Stylizing with a stored style skips the style encoder entirely. Each entry records the network
variant and the encoder it was computed with (statistics of one encoder mean nothing to another), the
source image's SHA-256 and the style size used. One entry is one file, NAME.npz (the two
arrays and the record as JSON), written atomically: two processes adding one name cannot
mix their halves, and the second is told the name exists. Entries are checked on load.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adainrt.errors import AdainrtError, OutputExists
from adainrt.fileio import atomic_write_bytes, cache_root
from adainrt.images import IMAGE_SUFFIXES
from adainrt.runtime.controls import StyleStats
from adainrt.spec import VARIANTS

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: The shapes a stored style may have: one per network variant.
_SHAPES = {(1, v.feature_channels, 1, 1): v.name for v in VARIANTS.values()}


class StyleBankError(AdainrtError):
    """A style name is invalid, unknown, already taken, broken, or made with another encoder."""


@dataclass(frozen=True)
class StoredStyle:
    name: str
    stats: StyleStats
    info: dict


def default_bank_dir() -> Path:
    """$ADAINRT_STYLES, else the cache folder's styles/."""
    env = os.environ.get("ADAINRT_STYLES")
    return Path(env) if env else cache_root() / "styles"


def check_name(name: str) -> str:
    """One unambiguous form: letters, digits, '_', '-', '.', at most 64, not ending like an image file
    (a name such as foo.jpg could never be used: it reads as a file name)."""
    if not _NAME.fullmatch(name) or name.lower().endswith(IMAGE_SUFFIXES):
        raise StyleBankError(f"style name {name!r}: use letters, digits, '_', '-', '.' (max 64), starting with a "
                             f"letter or digit, not ending in an image suffix ({', '.join(IMAGE_SUFFIXES)})")
    return name


#: Above any relu4_1 mean or std an encoder gives on images in [0, 1]: the embedded (normalized) VGG-19
#: stays below 100 on noise, checkerboards and saturated colours, the original unnormalized one in the low
#: thousands. A stored value beyond it (a hand-made or damaged file: 3e38 is finite) would flatten the
#: decoder's output to one colour, so it is refused instead.
MAX_STATISTIC = 1e4


def _validate(stats: StyleStats) -> StyleStats:
    if stats.mean.shape != stats.std.shape:
        raise ValueError(f"means of shape {stats.mean.shape} and stds of shape {stats.std.shape}")
    for what, array in (("means", stats.mean), ("stds", stats.std)):
        if array.shape not in _SHAPES:
            raise ValueError(f"{what} have shape {array.shape}, not one of {', '.join(map(str, _SHAPES))}")
        if not np.isfinite(array).all():
            raise ValueError(f"{what} hold NaN or infinite values")
        if (array < 0).any():  # relu4_1 is never negative, nor its mean or std
            raise ValueError(f"{what} hold negative values")
        if (array > MAX_STATISTIC).any():
            raise ValueError(f"{what} reach {float(array.max()):.3g}, beyond what an encoder gives "
                             f"(at most {MAX_STATISTIC:g})")
    return stats


class StyleBank:
    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else default_bank_dir()

    def path(self, name: str) -> Path:
        return self.folder / f"{check_name(name)}.npz"

    def check_name(self, name: str, overwrite: bool = False) -> None:
        """A valid name, free unless replacing is allowed (checked before any encoding)."""
        if self.path(name).exists() and not overwrite:
            raise OutputExists(self.path(name), f"style {name!r} in {self.folder}")

    def add(self, name: str, stats: StyleStats, info: dict, overwrite: bool = False) -> Path:
        path = self.path(name)
        _validate(StyleStats(np.asarray(stats.mean, np.float32), np.asarray(stats.std, np.float32)))
        record = {"name": name, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                  **info}
        buffer = io.BytesIO()
        np.savez(buffer, mean=stats.mean.astype(np.float32), std=stats.std.astype(np.float32),
                 record=np.array(json.dumps(record, sort_keys=True)))
        try:
            atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
        except OutputExists:
            raise OutputExists(path, f"style {name!r} in {self.folder}") from None
        path.with_suffix(".json").unlink(missing_ok=True)  # the record of an older adainrt's two-file entry
        return path

    def _read(self, name: str) -> StoredStyle:
        path = self.path(name)
        if not path.is_file():  # a FIFO would block np.load forever, a device would stream without end
            raise StyleBankError(f"stored style {name!r} ({path}) is broken (not a regular file); remove it with "
                                 f"`adainrt style remove {name}`")
        try:
            with np.load(path, allow_pickle=False) as data:
                stats = _validate(StyleStats(np.asarray(data["mean"], np.float32), np.asarray(data["std"], np.float32)))
                record = json.loads(str(data["record"])) if "record" in data else self._old_record(name)
        except (OSError, ValueError, KeyError, RecursionError, zipfile.BadZipFile, EOFError) as exc:
            reason = "not an archive of style statistics" if "pickle" in str(exc) else str(exc)  # numpy's wording
            raise StyleBankError(f"stored style {name!r} ({path}) is broken ({reason}); remove it with "
                                 f"`adainrt style remove {name}` and add it again") from exc
        if not isinstance(record, dict):
            raise StyleBankError(f"stored style {name!r} ({path}) is broken (its record is not an object); remove "
                                 f"it with `adainrt style remove {name}` and add it again")
        # the file's name is the one --style takes; the shape says the variant (older entries record none)
        return StoredStyle(name, stats, {**record, "name": name, "variant": _SHAPES[stats.mean.shape]})

    def _old_record(self, name: str) -> dict:
        sidecar = self.folder / f"{name}.json"
        return json.loads(sidecar.read_text()) if sidecar.is_file() else {"name": name}

    def get(self, name: str, encoder_hash: str | None = None, variant: str | None = None) -> StoredStyle:
        """The style ``name``; refused when stored for another network ``variant`` or encoder than the
        ones given (None: not checked)."""
        if not os.path.lexists(self.path(name)):
            known = ", ".join(self.names()) or "none"
            raise StyleBankError(f"no style named {name!r} in {self.folder} (stored: {known}); "
                                 f"add it with `adainrt style add {name} IMAGE`")
        stored = self._read(name)
        stored_for = stored.info["variant"]
        if variant and stored_for != variant:
            raise StyleBankError(f"style {name!r} was stored for the {stored_for} network, but the model in use is "
                                 f"{variant}: add it again for this model (`adainrt style add {name} IMAGE --variant "
                                 f"{variant} --overwrite`), or stylize with --variant {stored_for}")
        stored_with = stored.info.get("encoder_hash")
        if encoder_hash and stored_with and stored_with != encoder_hash:
            raise StyleBankError(f"style {name!r} was computed with encoder {stored_with}, but the model in "
                                 f"use has encoder {encoder_hash}; add it again for this model")
        return stored

    def names(self, variant: str | None = None) -> list[str]:
        """The stored names; with ``variant``, those stored for that network only (broken ones left out)."""
        names = sorted(p.stem for p in self.folder.glob("*.npz")) if self.folder.is_dir() else []
        if variant is None:
            return names
        return [e["name"] for e in self.entries() if e.get("variant") == variant]

    def entries(self) -> list[dict]:
        """Every entry's record; a broken one is listed with ``broken`` saying why, the others still load."""
        out = []
        for name in self.names():
            try:
                out.append(self._read(name).info)
            except StyleBankError as exc:
                out.append({"name": name, "broken": str(exc)})
        return out

    def remove(self, name: str) -> None:
        path = self.path(name)
        if not os.path.lexists(path):
            raise StyleBankError(f"no style named {name!r} in {self.folder}")
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
