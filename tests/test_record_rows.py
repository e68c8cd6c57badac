"""The rows of a store's records kept between commands (``sweeps.record_rows``): a kept row is used only
for the exact bytes it was read from, what cannot be read is never kept, and a broken cache costs time
only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mimdet.record import schema
from mimdet.record.schema import read_record, record_to_row, write_record
from sweeps import record_rows
from sweeps import store as store_module
from sweeps.record_rows import RecordRows
from sweeps.store import Store
from tests.test_record import make_record


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("MIMDET_CACHE", str(tmp_path / "cache"))
    return Store(tmp_path / "store")


def write(store: Store, run_id: str, **changes: object) -> Path:
    path = store.run_dir(run_id) / "record.json"
    write_record(make_record(run_id, **changes), path)
    return path


def forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a record was parsed again")

    monkeypatch.setattr(store_module, "parse_record", parse)


def test_a_kept_row_is_the_row_of_the_record_and_needs_no_parsing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(store, "a")
    expected = json.loads(json.dumps(record_to_row(read_record(path))))
    row, problem = RecordRows(store).load("a")
    assert problem is None and row == expected
    RecordRows(store).save()  # nothing new read: nothing written
    first = RecordRows(store)
    first.load("a")
    first.save()
    forbid_parsing(monkeypatch)
    assert RecordRows(store).load("a") == (expected, None)  # a new process: from the cache file


def test_a_record_changed_in_any_byte_is_read_again(store: Store) -> None:
    path = write(store, "a", error=None)
    rows = RecordRows(store)
    assert rows.load("a")[0]["bbox_AP"] == 12.3  # type: ignore[index]
    text = path.read_text()
    path.write_text(text.replace('"AP": 12.3', '"AP": 45.6'))  # same size, written in place
    assert len(path.read_text()) == len(text)
    assert rows.load("a")[0]["bbox_AP"] == 45.6  # type: ignore[index]


def test_unreadable_and_missing_records_are_never_kept(store: Store) -> None:
    path = write(store, "a")
    path.write_text('{"schema_version": 1}')
    rows = RecordRows(store)
    for _ in range(2):
        row, problem = rows.load("a")
        assert row is None and problem is not None and "missing" in problem and str(path) in problem
    assert rows.load("nothing") == (None, None)
    path.unlink()
    path.mkdir()  # a folder where the record should be
    row, problem = rows.load("a")
    assert row is None and problem is not None and "cannot read" in problem
    rows.save()
    assert not list((store.root.parent / "cache" / "sweeps").glob("rows-*.json"))


@pytest.mark.parametrize("content", ["{not json", '["a list"]', '{"a": "not a pair"}', '{"a": ["x", 1]}'])
def test_a_broken_cache_file_is_read_around(store: Store, content: str) -> None:
    write(store, "a")
    rows = RecordRows(store)
    rows.file.path.parent.mkdir(parents=True, exist_ok=True)
    rows.file.path.write_text(content)
    again = RecordRows(store)
    assert again.load("a")[0]["run_id"] == "a"  # type: ignore[index]


def test_a_changed_schema_starts_a_new_cache_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    write(store, "a")
    rows = RecordRows(store)
    rows.load("a")
    rows.save()
    old = rows.file.path
    monkeypatch.setattr(record_rows, "_schema_digest", lambda: "0" * 16)
    changed = RecordRows(store)
    parsed: list[str] = []
    real = schema.parse_record
    monkeypatch.setattr(
        store_module, "parse_record", lambda data, source: parsed.append(source) or real(data, source=source)
    )
    changed.load("a")
    changed.save()
    assert parsed and not old.exists() and changed.file.path.exists()


def test_cache_files_of_the_least_recently_used_stores_go(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(record_rows, "KEEP_STORES", 2)
    paths = []
    for age, name in enumerate(("s1", "s2", "s3"), start=1):
        other = Store(tmp_path / name)
        write(other, "a")
        rows = RecordRows(other)
        rows.load("a")
        rows.save()
        paths.append(rows.file.path)
        os.utime(rows.file.path, (age, age))  # used in this order, s3 last (its save just now)
    assert [path.exists() for path in paths] == [False, True, True]
