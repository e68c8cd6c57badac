"""Atomic files: readers see the old content or the new one, never half a file.

One writer for everything the layers share through the file system — records, run specs and job handles
in the results store, the synthetic dataset's annotations and manifest, checkpoints — so that concurrent
readers and crashed writers (a killed process, a full disk) never leave a truncated file behind.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# errors of a write the file system refused: full, read-only, no permission, a file or folder in the way
STORAGE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
    }
)


def storage_problem(error: BaseException) -> str | None:
    """The one line for a write the file system refused (``no space left on device (writing PATH)``), else
    None: the caller's exit code for it is 4, in ``mimdet.train`` and ``sweep`` alike."""
    if not isinstance(error, OSError) or error.errno not in STORAGE_ERRNOS:
        return None
    if error.errno == errno.EEXIST and error.filename and not os.path.isdir(error.filename):
        return f"{error.filename} {_not_a_folder(error.filename)}"  # mkdir's "file exists" says neither
    cause = os.strerror(error.errno)
    cause = cause[:1].lower() + cause[1:]
    return f"{cause} (writing {error.filename})" if error.filename else cause


# what a path that exists but cannot be read as a file is (a link to a plain file can)
NOT_A_PLAIN_FILE = "not a plain file (a folder, a FIFO or a device)"


def file_in_the_way(path: str | os.PathLike[str], *, shown_from: Path | None = None) -> str | None:
    """``F is a file, not a folder`` (or ``F is a link to T, which is not there``) where the nearest of
    ``path`` and the folders above it that exists is not a folder, so that nothing can be made or read
    under it (mkdir's "file exists" and a read's "not a directory" say neither); None where it is a folder
    or nothing of it exists. ``F`` is shown relative to ``shown_from`` where it lies under it."""
    found = _nearest_existing(Path(path))
    if found is None or found.is_dir():
        return None
    shown = found.relative_to(shown_from) if shown_from and found.is_relative_to(shown_from) else found
    return f"{shown} {_not_a_folder(found)}"


def refuse_file_in_the_way(path: str | os.PathLike[str]) -> None:
    """``FileExistsError`` (which ``storage_problem`` says as ``file_in_the_way`` does) where a folder to be
    made at ``path`` could not be: checked before the work that would fill it, not after."""
    found = _nearest_existing(Path(path))
    if found is not None and not found.is_dir():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(found))


def _nearest_existing(path: Path) -> Path | None:
    return next((folder for folder in (path, *path.parents) if os.path.lexists(folder)), None)


def _not_a_folder(path: str | os.PathLike[str]) -> str:
    """What stands at ``path``, which is there and no folder: a file, or a link to nothing (which mkdir
    calls "file exists" too)."""
    if os.path.islink(path) and not os.path.exists(path):
        return f"is a link to {os.readlink(path)}, which is not there"
    return "is a file, not a folder"


def not_a_plain_file(path: str | os.PathLike[str]) -> str | None:
    """What stands at ``path`` when it is not a plain file ("a FIFO", "a link", "a folder", ...); None when
    it is one or nothing is there. For a file opened in place to be written: a FIFO makes the open wait for
    a reader, forever, and a link makes the writes land in the file linked to."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISLNK, "a link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"))
    return next((kind for test, kind in kinds if test(mode)), "a device or a socket")


def read_at_most(path: str | os.PathLike[str], limit: int, *, whole_pipe: bool = False) -> bytes:
    """A shared file's bytes, ``limit`` + 1 at most (one more than allowed, so that the caller can tell
    an oversized file from a full one): a link to ``/dev/zero`` or a huge file is not read into memory.
    Opened without waiting for a writer, so that a FIFO nothing writes to reads as empty instead of
    waiting forever; a pipe with a writer gives what is in it now, or with ``whole_pipe`` everything
    until its writer closes it (a file given on a command line as ``<(...)``). ``OSError`` as ``open``
    and ``read`` raise it."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(descriptor, whole_pipe)
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read(limit + 1) or b""


def write_json_atomic(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Serialize ``data`` as JSON into ``path`` atomically; non-finite floats are refused (strict JSON)."""

    def dump(handle: IO[str]) -> None:
        json.dump(data, handle, indent=indent, sort_keys=sort_keys, allow_nan=False)
        handle.write("\n")

    _write_atomic(path, dump, binary=False)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes | memoryview) -> None:
    """Write ``data`` into ``path`` atomically (a checkpoint serialized in memory first).

    Serializing in memory first matters for torch: ``torch.save`` turns the file system's ENOSPC into an
    opaque ``RuntimeError``, while a plain write raises the ``OSError`` that names the cause.
    """
    _write_atomic(path, lambda handle: handle.write(data), binary=True)


def _write_atomic(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool) -> None:
    """``write`` into a uniquely named temporary file beside ``path``, fsync it, rename it over ``path``.

    Concurrent writers of different files into one folder never collide. On any error the temporary file
    is removed (on a full disk that gives the space back) and the error goes on; an ``OSError`` names
    ``path`` (a failed write names no file), so that "no space left on device" says where.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    except OSError as error:  # read-only, no permission: named by the file it was for
        raise OSError(error.errno, error.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:  # a write names no file, or the temp one
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); platforms that cannot open a directory skip this."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
