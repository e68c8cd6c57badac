"""The records of a store as table rows (``record_to_row``), kept between commands.

Parsing, checking and flattening 10,000 ``record.json`` files was most of a ``sweep status`` or
``sweep table`` (~1.2 s of ~2.5 s). A row is kept with a digest of the bytes it was read from, so it stands
for exactly that content: a file whose bytes differ in any way is parsed and checked again, and reading
the bytes to compare (~0.1 s for 10,000) is all an unchanged record costs. Unreadable records are not
kept: their error is worked out on every read.

The rows live in the user's cache (``sweeps.cache_file``), one file per store, not in the store: what is
in them is not checked again, so they are not open to whoever can write to a shared store. They depend on
the record schema's code (its digest names the file), and the files of the least recently used stores
beyond ``KEEP_STORES`` are removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import mimdet.record.schema
from mimdet.record.schema import record_to_row

from .cache_file import CacheFile, cache_folder, save_at_exit
from .store import Store

Row = dict[str, Any]
KEEP_STORES = 64


class RecordRows:
    """The rows of one store's records, from its cache file where the record is unchanged."""

    def __init__(self, store: Store) -> None:
        self.store = store
        owner = hashlib.sha256(str(Path(store.root).resolve()).encode()).hexdigest()[:16]
        self.file = CacheFile(f"rows-{owner}", _schema_digest)

    def load(self, run_id: str) -> tuple[Row | None, str | None]:
        """The run's record as a row, or None and why it cannot be read (one line); (None, None) if it has
        none. The row is shared: copy it before changing it."""
        data, unreadable = self.store.record_bytes(run_id)
        if data is None:
            return None, unreadable
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        kept = self.file.entries.get(run_id)
        if isinstance(kept, list) and len(kept) == 2 and kept[0] == digest and isinstance(kept[1], dict):
            return kept[1], None
        record, unreadable = self.store.record_from(run_id, data)
        if record is None:
            return None, unreadable
        row: Row = json.loads(json.dumps(record_to_row(record)))  # as it reads back from the cache
        self.file.entries[run_id] = [digest, row]
        self.file.dirty = True
        return row, None

    def save(self) -> None:
        """Write the rows read since the last save, and keep the cache files of ``KEEP_STORES`` stores."""
        if not self.file.dirty:
            return
        self.file.save()
        try:
            files = sorted(cache_folder().glob("rows-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
            for stale in files[KEEP_STORES:]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass  # another process removed one first


@functools.cache
def rows_of(root: Path) -> RecordRows:
    """The rows of the store at ``root``, one reader per process, saved when the process ends."""
    rows = RecordRows(Store(root))
    save_at_exit(rows.save)
    return rows


def _schema_digest() -> str:
    """What a row depends on: the code of the record schema, which reads, checks and flattens records."""
    source = Path(mimdet.record.schema.__file__).read_bytes()
    return hashlib.sha256(source).hexdigest()[:16]
