"""Atomic file writing and content hashing, shared by weights, export and image output."""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from adainrt.errors import OutputExists, OutputUnwritable

#: Write failures that come without a file name (a write(2) on a full or read-only disk).
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _read_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


#: Read once at import: changing the umask to read it races other threads.
_UMASK = _read_umask()
#: This host, in our temporary files' names: whether their process still runs can only be checked here.
_HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32] or "host"


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
    check_replaceable(target)
    if not overwrite and target.exists():
        raise OutputExists(target)
    check_folder_path(target.parent)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # name the output, not our temporary file
        raise OutputUnwritable(f"cannot write {target}: {exc.strerror or exc}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        _commit(tmp_path, target, overwrite)
    except OSError as exc:
        if exc.filename == str(tmp_path) or (exc.filename is None and exc.errno in _DISK_ERRNOS):
            raise OutputUnwritable(f"cannot write {target}: {exc.strerror}") from exc  # not our temporary's name
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


#: How many existing outputs a refusal names before it counts the rest.
_NAMED = 3


def refuse_existing(targets: Iterable[str | os.PathLike], also: str = "") -> None:
    """Refuse, before any is written, outputs of which some exist already: a set of files that belong
    together (a model repository, an encoder and its decoder, a folder job's results) is written whole
    or not at all. The message names the first few (a folder job may collide on thousands); ``also``
    extends the CLI's hint (e.g. another way out, such as --skip-existing)."""
    existing = [Path(target) for target in targets if Path(target).exists()]
    if existing:
        shown = ", ".join(map(str, existing[:_NAMED]))
        more = f" and {len(existing) - _NAMED} more" if len(existing) > _NAMED else ""
        refused = OutputExists(existing[0], shown + more, len(existing))
        raise refused.hinted(refused.cli_hint + also) if also else refused


def check_replaceable(target: str | os.PathLike) -> None:
    """Refuse an output that exists and is not a regular file (a FIFO, a device, a socket, a folder):
    moving a result over it would replace the node itself (as root, /dev/full), so even an allowed
    overwrite does not; a link is judged by what it points to."""
    try:
        mode = os.stat(target).st_mode
    except OSError:  # absent (or a dangling link): nothing is replaced
        return
    if not stat.S_ISREG(mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device")
        raise OutputUnwritable(f"{target} is {kind}, not a regular file; it is not replaced").hinted(
            "write to a regular file")


def check_folder_path(folder: Path) -> None:
    """Refuse, before any work, a folder we could not write into: a path that runs through a regular
    file (mkdir would fail obscurely), or a folder (or the nearest one that exists) that is read-only
    or not ours to write (the error would otherwise name a temporary file, after the work)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # mkdir would say only "File exists"
            raise OutputUnwritable(f"{existing} is a link to {os.readlink(existing)}, which does not exist")
        existing = existing.parent
    if not existing.is_dir():
        where = f"{existing}" if existing == folder else f"{folder}: {existing}"
        raise OutputUnwritable(f"{where} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if _read_only(existing) else "is not writable by this user"
        subject = "it" if existing == folder else str(existing)
        raise OutputUnwritable(f"cannot write into {folder}: {subject} {why}")


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # Windows has no statvfs
        return False


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


def remove_stale_temporaries(target: Path, min_age_s: float = 3600.0) -> list[Path]:
    """Delete our ``.NAME.HOST-PID.XXXX.*`` files beside ``target`` that a dead run left: written on this
    host by a process that no longer runs, or, from another host (a shared folder, where its process
    cannot be checked), untouched for ``min_age_s``."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.([A-Za-z0-9-]*)-(\d+)\.[^.]+\.[A-Za-z0-9]+$")
    removed = []
    for candidate in target.parent.glob(f".{glob.escape(target.name)}.*"):
        match = pattern.match(candidate.name)
        if not match:
            continue
        here = match.group(1) == _HOST
        if (here and not _process_alive(int(match.group(2)))) or (not here and _age(candidate) >= min_age_s):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


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


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, name: str = ".adainrt.lock") -> Iterator[None]:
    """An exclusive lock on a folder between processes (POSIX flock; a no-op where there is none), for
    read-modify-write of a shared file such as a manifest."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; writes stay atomic, only concurrent updates may race
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    with open(Path(folder) / name, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
