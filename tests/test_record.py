"""The run record: round trip, one-line errors naming file and field, atomic and concurrent writes."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from mimdet import record as rec
from mimdet.record import (
    ROW_COLUMNS,
    SCHEMA_VERSION,
    APMetrics,
    Cost,
    DatasetInfo,
    Hardware,
    Metrics,
    ParamCounts,
    RecordError,
    RunRecord,
    Variant,
    read_record,
    record_to_row,
    utc_timestamp,
    write_record,
)


def make_record(run_id: str = "ab12", **changes: Any) -> RunRecord:
    """A complete, valid training record; ``changes`` replace top-level fields."""
    fields: dict[str, Any] = dict(
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
        stage="train",
        parent_run_id=None,
        status="completed",
        error=None,
        created_at=utc_timestamp(),
        output_dir=f"runs/{run_id}",
        config_file="experiments/tiny_mimdet.py",
        overrides=["train.max_iter=10", "model.backbone.bottom_up.num_decoders=2"],
        code_version="50f1567",
        variant=Variant("mimdet", 64, 4, "random", 0.5, 1.0, 2, "hybrid", "mask_token"),
        dataset=DatasetInfo(train="synthetic_train", test="synthetic_val"),
        iterations=10,
        metrics=Metrics(
            bbox=APMetrics(12.3, 30.1, 8.0, float("nan"), 10.5, 20.0),
            segm=APMetrics(10.1, 25.0, 7.5, None, 9.0, 18.2),
        ),
        params=ParamCounts(total=1_234_567, per_component={"stem": 1000, "encoder": 200_000}),
        cost=Cost(3600.0, 0.5, 2_000_000_000, "cuda_max_allocated", 12.5),
        hardware=Hardware("cuda", "NVIDIA H100", 1, "AMD EPYC"),
        versions={"python": "3.11.7", "torch": "2.4.0"},
    )
    fields.update(changes)
    return RunRecord(**fields)


def test_round_trip_through_file(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "ab12" / "record.json"
    original = make_record()
    write_record(original, path)
    loaded = read_record(path)
    assert loaded.metrics.bbox.APs is None  # NaN (detectron2: no small objects) is stored as null
    original.metrics.bbox.APs = None
    assert loaded == original
    assert RunRecord.from_dict(original.to_dict()) == original
    assert json.loads(path.read_text())["variant"]["train_sample_ratio"] == 0.5


def test_eval_record_and_integer_floats(tmp_path: Path) -> None:
    data = make_record("ev01", stage="eval", parent_run_id="ab12").to_dict()
    data["variant"]["test_sample_ratio"] = 1  # JSON writers may drop the ".0"
    loaded = RunRecord.from_dict(data)
    assert loaded.parent_run_id == "ab12"
    assert loaded.variant.test_sample_ratio == 1.0 and isinstance(loaded.variant.test_sample_ratio, float)


def test_unknown_fields_are_ignored(tmp_path: Path) -> None:
    data = make_record().to_dict()
    data["added_later"] = {"x": 1}
    data["cost"]["energy_j"] = 5.0
    path = tmp_path / "record.json"
    path.write_text(json.dumps(data))
    assert read_record(path) == RunRecord.from_dict(make_record().to_dict())


def test_record_to_row_columns() -> None:
    row = record_to_row(make_record())
    assert [c for c in row if c in ROW_COLUMNS] == list(ROW_COLUMNS)
    assert set(row) - set(ROW_COLUMNS) == {"params_stem", "params_encoder", "version_python", "version_torch"}
    assert row["train_sample_ratio"] == 0.5 and row["test_sample_ratio"] == 1.0
    assert row["bbox_AP"] == 12.3 and row["segm_APl"] == 18.2
    assert row["params_total"] == 1_234_567 and row["params_encoder"] == 200_000
    assert row["dataset_train"] == "synthetic_train" and row["gpu_count"] == 1
    assert row["overrides"] == "train.max_iter=10 model.backbone.bottom_up.num_decoders=2"
    assert row["peak_mem_kind"] == "cuda_max_allocated" and row["version_torch"] == "2.4.0"


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def _delete(data: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    del data[last]


BAD_VALUES = [
    ("metrics.bbox.AP", "x", "metrics.bbox.AP: expected a number or null, got 'x'"),
    ("metrics.segm.AP50", True, "metrics.segm.AP50: expected a number or null, got True"),
    ("iterations", 1.5, "iterations: expected an integer, got 1.5"),
    ("run_id", 12, "run_id: expected a string, got 12"),
    ("variant.sampling", "grid", "variant.sampling: expected one of 'random', 'window', 'all', got 'grid'"),
    ("stage", "training", "stage: expected one of 'train', 'eval', got 'training'"),
    ("cost.peak_mem_kind", "rss", "cost.peak_mem_kind: expected one of"),
    ("variant.decoder_fill", 3, "variant.decoder_fill: expected one of 'mask_token', 'convstem' or null"),
    ("variant.train_sample_ratio", None, "variant.train_sample_ratio: expected a number, got null"),
    ("overrides", ["a=1", 2], "overrides[1]: expected a string, got 2"),
    ("overrides", "a=1", "overrides: expected a list, got 'a=1'"),
    ("params.per_component", {"stem": "9"}, "params.per_component.stem: expected an integer, got '9'"),
    ("versions", ["3.11"], "versions: expected an object, got a list"),
    ("cost", None, "cost: expected an object, got null"),
    ("hardware.gpu_count", 1.0, "hardware.gpu_count: expected an integer, got 1.0"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_wrong_type_or_enum_names_file_and_field(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    data = make_record().to_dict()
    _set(data, field, value)
    path = tmp_path / "ab12" / "record.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        read_record(path)
    text = str(info.value)
    assert text.startswith(f"{path}: {message}")
    assert "\n" not in text
    assert info.value.field is not None and info.value.field.startswith(field)


@pytest.mark.parametrize(
    "field", ["metrics.segm.APl", "variant", "cost.sec_per_iter", "dataset.test", "status", "versions"]
)
def test_missing_field(tmp_path: Path, field: str) -> None:
    data = make_record().to_dict()
    _delete(data, field)
    path = tmp_path / "record.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=rf"^{path}: {field}: missing$"):
        read_record(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ('{"schema_version": 1,\n "run_id": ', "invalid JSON: Expecting value at line 2 column 12"),
        ("[1, 2]", "expected a JSON object, got a list"),
        ('{"run_id": "x"}', "schema_version: missing"),
        ('{"schema_version": "1"}', "schema_version: expected a version number, got '1'"),
        ('{"schema_version": 2}', "schema_version: version 2 is newer than this code reads (1)"),
        (b"\xff\xfe{", "not UTF-8 text"),
    ],
    ids=["missing-file", "invalid-json", "not-object", "no-version", "version-type", "newer", "binary"],
)
def test_file_level_errors(tmp_path: Path, content: str | bytes | None, message: str) -> None:
    path = tmp_path / "record.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(RecordError) as info:
        read_record(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


def test_error_text_with_log_tail_round_trips(tmp_path: Path) -> None:
    error = "RuntimeError: CUDA out of memory\n--- log tail ---\nline 1\nline 2"
    path = tmp_path / "record.json"
    write_record(make_record(status="failed", error=error), path)
    assert read_record(path).error == error


def test_write_refuses_an_invalid_record(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    with pytest.raises(RecordError, match=r"record.json: variant.sampling: expected one of"):
        write_record(make_record(variant=Variant("mimdet", 64, 4, "grid", 0.5, 1.0, 2, "hybrid", None)), path)
    assert list(tmp_path.iterdir()) == []


def test_crash_mid_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "record.json"
    write_record(make_record(), path)
    before = path.read_bytes()

    def dump_half_then_fail(obj: Any, fh: Any, **kwargs: Any) -> None:
        fh.write(json.dumps(obj, **kwargs)[:100])
        fh.flush()
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(rec.json, "dump", dump_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        write_record(make_record(iterations=999), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # the temp file is gone too


def _write_many(args: tuple[str, int, int]) -> None:
    store, worker, count = args
    for i in range(count):
        run_id = f"w{worker}-{i:03d}"
        write_record(make_record(run_id, iterations=i), Path(store) / run_id / "record.json")
        write_record(make_record(run_id), Path(store) / "latest.json")  # all workers race on one path


def test_concurrent_writers_into_one_store(tmp_path: Path) -> None:
    workers, count = 8, 50
    with multiprocessing.get_context().Pool(workers) as pool:
        pool.map(_write_many, [(str(tmp_path), w, count) for w in range(workers)])
    paths = sorted(tmp_path.glob("*/record.json"))
    assert len(paths) == workers * count
    records = [read_record(p) for p in paths]
    assert {r.run_id for r in records} == {f"w{w}-{i:03d}" for w in range(workers) for i in range(count)}
    assert all(r.iterations == int(r.run_id[-3:]) for r in records)
    assert read_record(tmp_path / "latest.json").run_id.endswith(f"-{count - 1:03d}")
    assert not [p for p in tmp_path.rglob("*.tmp")], "no temporary file is left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(paths[0]).st_mode & 0o777 == 0o666 & ~umask, (
        "permissions as for open(), not mkstemp's 0600"
    )
