"""Atomic JSON files: readers see the old content or the new one, never half a file.

One writer for everything the layers share through the file system — records, run specs and job handles
in the results store, the synthetic dataset's annotations and manifest — so that concurrent readers and
crashed writers never leave a truncated file behind.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any


def write_json_atomic(
    path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False
) -> None:
    """Serialize into a uniquely named temporary file beside ``path``, fsync it, rename it over ``path``.

    Concurrent writers of different files into one folder never collide; non-finite floats are refused
    (strict JSON).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for open()
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=indent, sort_keys=sort_keys, allow_nan=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
