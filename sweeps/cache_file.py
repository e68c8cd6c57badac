"""One JSON object under ``$MIMDET_CACHE/sweeps`` (default ``~/.cache/mimdet/sweeps``): answers this machine
need not work out again while what they depend on is unchanged.

The engine keeps two kinds (``config_cache``: facts of config files, one file per checkout;
``record_rows``: the table rows of a store's records, one file per store). A file is named
``<owner>-<digest>.json``: the owner says whose answers they are, the digest what they depend on. It is
read on first use and written, atomically, only when there are new answers; writing it removes the
owner's files of other digests (answers of code that has changed since). A cache file that cannot be
read counts as empty, and one that cannot be written only costs time. Its first line is a digest of the
rest, so that a file changed in any way but by this module (an edit, a bit flip, another program's
values of the wrong shape) counts as empty too, rather than stopping a command with a traceback or
changing run ids silently; a FIFO reads as empty, and a file larger than ``MAX_BYTES`` (a link to
``/dev/zero``) is not read further.

Saving: ``save_at_exit`` registers a cache's save; ``save_all`` runs them, a command before it ends (so
that a Ctrl-C while they write is the command's to report), and the process when it ends. A save cut
short leaves the file as it was (the write is atomic); a Ctrl-C while the process ends drops what is left
to save, without a traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mimdet.record.atomic import read_at_most, write_bytes_atomic

MAX_BYTES = 2**30  # the rows of 100,000 records are ~250 MB


def cache_folder() -> Path:
    """``$MIMDET_CACHE/sweeps``, else ``~/.cache/mimdet/sweeps`` (shared with the MAE checkpoint cache)."""
    return Path(os.environ.get("MIMDET_CACHE") or Path.home() / ".cache" / "mimdet") / "sweeps"


class CacheFile:
    """The entries of ``<owner>-<digest()>.json``; ``digest`` is called once, on first use."""

    def __init__(self, owner: str, digest: Callable[[], str]) -> None:
        self.owner = owner
        self._digest = digest
        self._path: Path | None = None
        self._entries: dict[str, Any] = {}
        self.dirty = False  # set by whoever adds entries that should be saved

    @property
    def path(self) -> Path:
        if self._path is None:
            self._path = cache_folder() / f"{self.owner}-{self._digest()}.json"
            self._entries = _read(self._path)
        return self._path

    @property
    def entries(self) -> dict[str, Any]:
        """The answers, read from the file on first use."""
        _ = self.path
        return self._entries

    def save(self) -> None:
        """Write the entries if there are new ones, and remove the owner's files of other digests."""
        if not self.dirty:
            return
        path = self.path
        try:
            text = json.dumps(self._entries).encode()  # NaN and Infinity too: a spec may hold them
            write_bytes_atomic(path, _digest_of(text) + b"\n" + text)
            for old in path.parent.glob(f"{self.owner}-*.json"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:
            pass
        self.dirty = False


def _read(path: Path) -> dict[str, Any]:
    """The entries of a cache file, or none (module docstring); opened without blocking."""
    try:
        data = read_at_most(path, MAX_BYTES)
        if len(data) > MAX_BYTES:
            return {}
        digest, _, text = data.partition(b"\n")
        loaded = json.loads(text) if digest == _digest_of(text) else None
    except (OSError, ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _digest_of(text: bytes) -> bytes:
    return hashlib.blake2b(text, digest_size=16).hexdigest().encode()


_SAVES: list[Callable[[], None]] = []


def save_at_exit(save: Callable[[], None]) -> None:
    """Have ``save_all`` run ``save``, at the latest when the process ends."""
    _SAVES.append(save)


def save_all() -> None:
    """Write every cache's new answers (a save with none writes nothing)."""
    for save in _SAVES:
        save()


def _save_at_exit() -> None:
    with contextlib.suppress(KeyboardInterrupt):  # a cache only saves time: dropped, not a traceback
        save_all()


atexit.register(_save_at_exit)
