"""Run records into one DataFrame: from a results store (``**/record.json``) or a collected results file.

Rows are ``mimdet.record.schema.record_to_row`` (column names documented there), one per record; nothing here
parses logs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from mimdet.record.schema import ROW_COLUMNS, RecordError, read_record, record_to_row

log = logging.getLogger(__name__)


def load_records(source: str | os.PathLike[str], *, strict: bool = False) -> pd.DataFrame:
    """All records under a store directory, or a ``.parquet`` / ``.csv`` results file, one row each.

    In a store, a record that fails validation is logged (its one-line ``RecordError``) and skipped, so
    one broken run does not hide the others; ``strict=True`` raises instead. Records are read in sorted
    path order, so the frame is the same on every machine.
    """
    path = Path(source)
    if path.is_dir():
        return _load_store(path, strict=strict)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such results store or file")
    if path.suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except ImportError as err:
            raise ImportError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from err
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise ValueError(f"{path}: expected a results store directory, a .parquet or a .csv file")


def _load_store(store: Path, *, strict: bool) -> pd.DataFrame:
    rows = []
    for path in sorted(store.rglob("record.json")):
        try:
            rows.append(record_to_row(read_record(path)))
        except RecordError as err:
            if strict:
                raise
            log.warning("skipping record: %s", err)
    if not rows:
        return pd.DataFrame(columns=list(ROW_COLUMNS))
    return pd.DataFrame(rows)
