"""Atomic file writing and content hashing, shared by weights, export and image output."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from adainrt.errors import OutputExists


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    A crash or an exception mid-write leaves ``target`` as it was (or absent), never half
    written. With ``overwrite=False`` an existing target is refused before any work is done.
    """
    target = Path(target)
    if not overwrite and target.exists():
        raise OutputExists(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike, data: bytes, overwrite: bool = True) -> None:
    with atomic_path(target, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


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
