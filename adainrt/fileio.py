"""Atomic file writing and content hashing, shared by weights, export and image output."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from adainrt.errors import AdainrtError, OutputExists


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it to ``target`` on success.

    A crash or an exception mid-write leaves ``target`` as it was (or absent), never half
    written. With ``overwrite=False`` an existing target is refused before any work is done,
    and again, atomically, when the result is moved into place (two writers of one new name:
    exactly one wins, the other is told it exists). Temporary files of our own that a killed
    run left beside the target (their process is gone) are removed first.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise OutputExists(target)
    check_folder_path(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        _commit(tmp_path, target, overwrite)
    finally:
        tmp_path.unlink(missing_ok=True)


def check_folder_path(folder: Path) -> None:
    """Refuse a folder path that runs through a regular file (mkdir would fail obscurely)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = f"{existing}" if existing == folder else f"{folder}: {existing}"
        raise AdainrtError(f"{where} is a file, not a folder; choose another output path")


def _commit(tmp: Path, target: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if the target appeared meanwhile: no silent replacement
    except FileExistsError:
        raise OutputExists(target) from None
    except OSError:  # a file system without hard links
        if target.exists():
            raise OutputExists(target) from None
        os.replace(tmp, target)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete ``.NAME.PID.XXXX.*`` files beside ``target`` whose writing process no longer runs."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)\.[^.]+\.[A-Za-z0-9]+$")
    removed = []
    for candidate in target.parent.glob(f".{glob.escape(target.name)}.*"):
        match = pattern.match(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic_write_bytes(target: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what native libraries print on standard output (file descriptor 1) to standard error
    meanwhile: onnxruntime prints provider failures there, which would corrupt `--json` output."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cache_root() -> Path:
    """Where derived artifacts (exported graphs, engine caches) go: $ADAINRT_CACHE or ~/.cache/adainrt."""
    root = os.environ.get("ADAINRT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "adainrt"
