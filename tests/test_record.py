"""The run record: round trip, one-line errors naming file and field, atomic and concurrent writes."""

from __future__ import annotations

import copy
import dataclasses
import json
import multiprocessing
import os
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimdet.record import schema as rec
from mimdet.record.examples import example_record, example_variant
from mimdet.record.schema import (
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
    """A complete, valid tiny training record with every kind of value (a NaN AP, a null AP, a dict of
    counts); ``changes`` replace top-level fields."""
    fields: dict[str, Any] = dict(
        created_at=utc_timestamp(),
        config_file="experiments/tiny_mimdet.py",
        overrides=["train.max_iter=10", "model.backbone.bottom_up.num_decoders=2"],
        variant=example_variant(embed_dim=64, depth=4, num_decoders=2),
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
    return example_record(run_id, **{**fields, **changes})


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


# --- fuzzing the loader: whatever is in the file, a valid record or one line naming file and field --------

_FUZZ_BASE: dict[str, Any] = make_record(
    status="failed", error="RuntimeError: CUDA out of memory — ü 日本\n--- log tail ---"
).to_dict()  # non-ASCII, so that cut points fall inside multi-byte characters
_DICT_FIELDS = {("params", "per_component"), ("versions",)}  # dict[str, ...] fields: entries, not fields


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node below ``node``, containers and leaves, as key/index paths."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [p for key, child in children for p in [(*prefix, key), *_paths(child, (*prefix, key))]]


_PATHS = _paths(_FUZZ_BASE)


def _field_name(path: tuple[Any, ...]) -> str:
    """The field path as ``RecordError.field`` spells it: ``metrics.bbox.AP``, ``overrides[1]``."""
    name = ""
    for key in path:
        name = f"{name}[{key}]" if isinstance(key, int) else f"{name}.{key}" if name else key
    return name


def _node(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _names_field(error: RecordError, path: tuple[Any, ...]) -> bool:
    """True if the error is about the field at ``path`` or something inside it."""
    name = _field_name(path)
    field = error.field or ""
    return field == name or field.startswith((f"{name}.", f"{name}["))


_PLACEHOLDER = "\x00fuzz-{}\x00"  # JSON-escaped as "\u0000fuzz-0\u0000", which no generated key or text is


def _json_text(data: Any, texts: list[str]) -> str:
    """``data`` dumped as ``write_record`` does, ``_PLACEHOLDER.format(i)`` replaced by raw ``texts[i]``."""
    text = json.dumps(data, indent=2)
    for i, raw in enumerate(texts):
        text = text.replace(json.dumps(_PLACEHOLDER.format(i)), raw)
    return text


def _read_one_line_or_valid(path: Path) -> RunRecord | RecordError:
    """Read ``path``: a valid record comes back, or a one-line RecordError naming the file; nothing else."""
    try:
        record = read_record(path)
    except RecordError as error:
        message = str(error)
        assert message.startswith(f"{path}: "), message
        assert len(message.splitlines()) == 1, repr(message)
        return error
    assert RunRecord.from_dict(record.to_dict()) == record, "what reads is a valid record: it round-trips"
    return record


@pytest.fixture(scope="module")
def fuzz_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file, rewritten by each example (a function-scoped tmp_path would be shared across examples)."""
    return tmp_path_factory.mktemp("fuzz") / "record.json"


_keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["", "a\nb", "\r", "a\r\nb", "\u2028", "x\x85y", "\x1b[2J", "\x00", "total", "日本"]),
)
_NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e309", "-1e309", "1E400"]
_raw_numbers = st.one_of(
    st.sampled_from(_NON_FINITE),
    st.sampled_from(["1" + "0" * 400, "-1" + "0" * 400, "9" * 4300]),  # beyond float, within int()'s limit
    st.sampled_from(["1e-400", "-0", "-0.0", "1.0", "2e0", "5e-324", "0", "-1"]),
)  # JSON number tokens as written, including ones Python's json.dumps never writes
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # json.dumps writes nan and inf as the NaN and Infinity tokens
    st.text(max_size=12),
    st.sampled_from(
        ["", "train\n", "a\nb", "\r", "\u2028", "\t", "\x1b[2J", "日本語", "\ud800", "1", "null"]
    ),
).map(json.dumps)
_plausible = st.sampled_from(sorted({json.dumps(_node(_FUZZ_BASE, p)) for p in _PATHS}))
_json_values = st.recursive(
    st.one_of(_scalars, _raw_numbers, _plausible),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.dictionaries(_keys, inner, max_size=4).map(
            lambda d: "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in d.items()) + "}"
        ),
    ),
    max_leaves=8,
)  # JSON text of any value: each case above at any depth of lists and objects
_too_many_digits = "1" * 5000  # over int()'s 4300-digit limit
_entry_paths = st.tuples(st.sampled_from(sorted(_DICT_FIELDS)), _keys).map(lambda t: (*t[0], t[1]))
_replace_paths = st.one_of(st.sampled_from(_PATHS), _entry_paths)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_replace_paths, st.one_of(_json_values, _raw_numbers, st.just(_too_many_digits)))
def test_fuzz_one_field_replaced_by_any_json(fuzz_path: Path, path: tuple[Any, ...], value: str) -> None:
    """One field, at any depth, becomes any JSON value: read, or refused naming that field.

    Booleans never pass for numbers (JSON true is not 1), whatever field they land in.
    """
    data = copy.deepcopy(_FUZZ_BASE)
    _node(data, path[:-1])[path[-1]] = _PLACEHOLDER.format(0)
    fuzz_path.write_text(_json_text(data, [value]), encoding="utf-8")
    result = _read_one_line_or_valid(fuzz_path)
    if isinstance(result, RecordError):
        if result.field is None:  # only the integer JSON cannot read is a whole-file problem here
            assert value == _too_many_digits and "invalid JSON: an integer with too many digits" in str(
                result
            )
        else:
            assert _names_field(result, path), (result.field, path)
    original = _node(_FUZZ_BASE, path) if path in _PATHS else None
    if value in ("true", "false") and type(original) in (int, float):
        assert isinstance(result, RecordError)


_BASE_BYTES = json.dumps(_FUZZ_BASE, ensure_ascii=False).encode("utf-8")


def _corrupted(at: int, junk: bytes, overwrite: bool) -> bytes:
    """The valid record with ``junk`` inserted at (or written over) byte ``at``, e.g. invalid UTF-8."""
    return _BASE_BYTES[:at] + junk + _BASE_BYTES[at + len(junk) * overwrite :]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=100).map(lambda t: t.encode("utf-8")),
        st.text(max_size=30).map(lambda t: t.encode("utf-16")),
        st.builds(
            _corrupted, st.integers(0, len(_BASE_BYTES)), st.binary(min_size=1, max_size=4), st.booleans()
        ),
    )
)
def test_fuzz_arbitrary_bytes(fuzz_path: Path, content: bytes) -> None:
    fuzz_path.write_bytes(content)
    _read_one_line_or_valid(fuzz_path)


def test_truncated_record_at_every_cut_point(tmp_path: Path) -> None:
    """A writer that died mid-file (not ours: ours is atomic) leaves a prefix; each prefix is refused."""
    path = tmp_path / "record.json"
    write_record(RunRecord.from_dict(_FUZZ_BASE), path)
    content = path.read_bytes()
    assert content.endswith(b"}\n")
    for cut in range(len(content) - 1):  # the last cut only drops the final newline
        path.write_bytes(content[:cut])
        error = _read_one_line_or_valid(path)
        assert isinstance(error, RecordError) and error.field is None, cut
        assert error.problem.startswith(("invalid JSON: ", "not UTF-8 text")), (cut, error.problem)


_deep = st.tuples(st.integers(1, 100_000), st.sampled_from(["[", '{"a": '])).map(
    lambda t: t[1] * t[0] + "0" + ("]" if t[1] == "[" else "}") * t[0]
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.one_of(
        _json_values,
        _deep,
        st.tuples(_json_values, _json_values).map(
            lambda t: f'{{"schema_version": {t[0]}, "run_id": {t[1]}}}'
        ),
        st.just(_too_many_digits),
    )
)
def test_fuzz_any_json_at_top_level(fuzz_path: Path, text: str) -> None:
    """Lists, numbers, strings, null, deep nesting, objects that only start like a record: all refused."""
    fuzz_path.write_text(text, encoding="utf-8")
    assert isinstance(_read_one_line_or_valid(fuzz_path), RecordError)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(_deep)
def test_fuzz_deep_nesting_in_an_extra_key(fuzz_path: Path, nested: str) -> None:
    """Unknown fields are ignored however deep, until JSON itself cannot be read."""
    data = dict(_FUZZ_BASE, added_later=_PLACEHOLDER.format(0))
    fuzz_path.write_text(_json_text(data, [nested]), encoding="utf-8")
    result = _read_one_line_or_valid(fuzz_path)
    if isinstance(result, RecordError):
        assert result.problem == "invalid JSON: nested too deeply"
    else:
        assert result == RunRecord.from_dict(_FUZZ_BASE)


_OBJECT_PATHS = [(), *(p for p in _PATHS if isinstance(_node(_FUZZ_BASE, p), dict) and p not in _DICT_FIELDS)]
_extra_keys = st.tuples(st.sampled_from(_OBJECT_PATHS), _keys).filter(
    lambda t: t[1] not in _node(_FUZZ_BASE, t[0])
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(_extra_keys, _json_values), min_size=1, max_size=4))
def test_fuzz_extra_keys_anywhere_are_ignored(fuzz_path: Path, extras: list[Any]) -> None:
    data = copy.deepcopy(_FUZZ_BASE)
    for i, ((parent, key), _) in enumerate(extras):
        _node(data, parent)[key] = _PLACEHOLDER.format(i)
    fuzz_path.write_text(_json_text(data, [value for _, value in extras]), encoding="utf-8")
    assert _read_one_line_or_valid(fuzz_path) == RunRecord.from_dict(_FUZZ_BASE)


def _mutate(data: dict[str, Any], mutation: tuple[str, tuple[Any, ...]], placeholder: str) -> None:
    """Apply one mutation where its path still exists (an earlier one may have replaced a parent)."""
    kind, path = mutation
    try:
        parent = _node(data, path[:-1])
        if kind == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = placeholder
    except (KeyError, IndexError, TypeError):
        pass


_mutations = st.lists(
    st.tuples(
        st.one_of(
            st.tuples(st.just("delete"), st.sampled_from(_PATHS)),
            st.tuples(st.just("set"), _replace_paths),
            st.tuples(st.just("set"), _extra_keys.map(lambda t: (*t[0], t[1]))),
        ),
        _json_values,
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_mutations, st.one_of(st.just(None), st.integers(min_value=2), _raw_numbers, _scalars))
def test_fuzz_several_mutations_and_any_schema_version(
    fuzz_path: Path, mutations: list[Any], version: int | str | None
) -> None:
    """Fields deleted, replaced and added together; a newer schema_version is refused before anything else."""
    data = copy.deepcopy(_FUZZ_BASE)
    for i, (mutation, _) in enumerate(mutations):
        _mutate(data, mutation, _PLACEHOLDER.format(i))
    texts = [value for _, value in mutations]
    if version is not None:
        data["schema_version"] = _PLACEHOLDER.format(len(texts))
        texts.append(str(version))
    fuzz_path.write_text(_json_text(data, texts), encoding="utf-8")
    result = _read_one_line_or_valid(fuzz_path)
    if isinstance(version, int):
        assert isinstance(result, RecordError) and result.field == "schema_version"
        assert f"is newer than this code reads ({SCHEMA_VERSION})" in result.problem
        assert len(str(result)) < 200 + len(str(fuzz_path)), "a huge version number is abbreviated"


def _field_default(path: tuple[Any, ...]) -> Any:
    """The default of the record's dataclass field at ``path``, or ``dataclasses.MISSING``."""
    cls: Any = RunRecord
    for key in path[:-1]:
        cls = typing.get_type_hints(cls)[key]
    (field,) = [field for field in dataclasses.fields(cls) if field.name == path[-1]]
    return field.default


@pytest.mark.parametrize("path", _PATHS, ids=[_field_name(p) for p in _PATHS])
def test_each_field_deleted(tmp_path: Path, path: tuple[Any, ...]) -> None:
    """A dataclass field is required unless it has a default (added later: older records lack it); list
    items and dict entries are not."""
    data = copy.deepcopy(_FUZZ_BASE)
    del _node(data, path[:-1])[path[-1]]
    file = tmp_path / "record.json"
    file.write_text(json.dumps(data))
    result = _read_one_line_or_valid(file)
    if isinstance(path[-1], int) or path[:-1] in _DICT_FIELDS:
        assert isinstance(result, RunRecord)
    elif (default := _field_default(path)) is not dataclasses.MISSING:
        assert isinstance(result, RunRecord) and _node(result.to_dict(), path) == default
    else:
        assert isinstance(result, RecordError) and str(result) == f"{file}: {_field_name(path)}: missing"


_CONTAINERS = [p for p in _PATHS if isinstance(_node(_FUZZ_BASE, p), dict)]


@pytest.mark.parametrize("path", _CONTAINERS, ids=[_field_name(p) for p in _CONTAINERS])
@pytest.mark.parametrize("value", [[], ["x"], "x", 1, 0.5, True, None], ids=repr)
def test_nested_object_that_is_not_an_object(tmp_path: Path, path: tuple[Any, ...], value: Any) -> None:
    data = copy.deepcopy(_FUZZ_BASE)
    _node(data, path[:-1])[path[-1]] = value
    file = tmp_path / "record.json"
    file.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        read_record(file)
    assert info.value.field == _field_name(path)
    assert info.value.problem.startswith("expected an object, got ")


_NUMBERS = [p for p in _PATHS if type(_node(_FUZZ_BASE, p)) in (int, float)]


@pytest.mark.parametrize("path", _NUMBERS, ids=[_field_name(p) for p in _NUMBERS])
@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(path: tuple[Any, ...], value: bool) -> None:
    """JSON true/false in a number field is refused, not read as 1/0 (bool is an int subclass in Python)."""
    data = copy.deepcopy(_FUZZ_BASE)
    _node(data, path[:-1])[path[-1]] = value
    with pytest.raises(RecordError, match=rf": expected (a|an) [a-z ]+, got {value}$") as info:
        RunRecord.from_dict(data, source="fuzz.json")
    assert info.value.field == _field_name(path)


_NON_FINITE_FIELDS = [
    ("metrics.bbox.AP", "expected a number from 0 to 100 or null, got "),
    ("cost.sec_per_iter", "expected a number of 0 or more or null, got "),
    ("variant.train_sample_ratio", "expected a finite number, got "),
    ("iterations", "expected an integer, got "),
    ("cost.peak_mem_bytes_bs1", "expected an integer or null, got "),
    ("schema_version", "expected a version number, got "),
]


@pytest.mark.parametrize("token", _NON_FINITE)
@pytest.mark.parametrize(("field", "expected"), _NON_FINITE_FIELDS, ids=[f for f, _ in _NON_FINITE_FIELDS])
def test_non_finite_numbers_are_refused_naming_the_field(
    tmp_path: Path, token: str, field: str, expected: str
) -> None:
    """NaN, Infinity and 1e309 (which is infinite) are no value a run writes (``to_dict`` writes a NaN AP,
    detectron2's for absent sizes, as null; the writer refuses non-finite numbers): a record holding one was
    changed by something else, and is refused. Before, an optional field read them as null, so a box AP of
    Infinity was a completed run without a number, tabled as if it had not been evaluated."""
    data = copy.deepcopy(_FUZZ_BASE)
    _set(data, field, _PLACEHOLDER.format(0))
    file = tmp_path / "record.json"
    file.write_text(_json_text(data, [token]))
    with pytest.raises(RecordError) as info:
        read_record(file)
    assert info.value.field == field and info.value.problem.startswith(expected), info.value.problem


@pytest.mark.parametrize("value", [100.5, -0.1, -1, 1e6])
@pytest.mark.parametrize("field", ["metrics.bbox.AP", "metrics.segm.APl"])
def test_an_ap_outside_0_to_100_is_refused(field: str, value: float) -> None:
    """AP is COCO's percent scale: a value outside [0, 100] is no result (a hand edit, a fraction written as
    a percent), and is refused, naming the range; 0 and 100 are values."""
    data = copy.deepcopy(_FUZZ_BASE)
    _set(data, field, value)
    with pytest.raises(RecordError) as info:
        RunRecord.from_dict(data, source="record.json")
    expected = f"record.json: {field}: expected a number from 0 to 100 or null, got {value!r}"
    assert str(info.value) == expected
    for edge in (0, 100.0):
        _set(data, field, edge)
        assert _node(RunRecord.from_dict(data).to_dict(), tuple(field.split("."))) == edge


_OUT_OF_BOUNDS = [
    ("cost.train_wall_time_s", -36000.0, "a number of 0 or more or null"),
    ("cost.sec_per_iter", -0.5, "a number of 0 or more or null"),
    ("cost.inference_images_per_s", -1, "a number of 0 or more or null"),
    ("cost.peak_mem_bytes_bs1", -1, "an integer from 0 to 2**63-1 or null"),
    ("iterations", -5, "an integer from 0 to 2**63-1"),
    ("iterations", 10**30, "an integer from 0 to 2**63-1"),
    ("params.total", 2**63, "an integer from 0 to 2**63-1"),
    ("variant.embed_dim", -(2**63) - 1, "an integer from -2**63 to 2**63-1"),
]


@pytest.mark.parametrize(
    ("field", "value", "expected"), _OUT_OF_BOUNDS, ids=[f"{f}={v}" for f, v, _ in _OUT_OF_BOUNDS]
)
def test_a_negative_cost_or_count_or_an_integer_beyond_64_bits_is_refused(
    field: str, value: float, expected: str
) -> None:
    """A time, rate, size or count below 0 is no measurement (before, tabled as ``-10.0 h``); an integer
    beyond int64 is none a run writes, and broke ``sweep collect -o x.parquet`` in pyarrow's traceback."""
    data = copy.deepcopy(_FUZZ_BASE)
    _set(data, field, value)
    with pytest.raises(RecordError) as info:
        RunRecord.from_dict(data, source="record.json")
    assert str(info.value) == f"record.json: {field}: expected {expected}, got {value!r}"


def test_integers_at_their_bounds_read_and_go_to_parquet(tmp_path: Path) -> None:
    """What reads as valid can be collected: every integer at int64's edge fits a parquet column."""
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    data = copy.deepcopy(_FUZZ_BASE)
    for field in ("iterations", "params.total", "cost.peak_mem_bytes_bs1", "hardware.gpu_count"):
        _set(data, field, 2**63 - 1)
    _set(data, "variant.embed_dim", -(2**63))
    _set(data, "cost.train_wall_time_s", 0)
    row = record_to_row(RunRecord.from_dict(data))
    pandas.DataFrame([row]).to_parquet(tmp_path / "x.parquet", index=False)
    assert pandas.read_parquet(tmp_path / "x.parquet")["iterations"][0] == 2**63 - 1


def test_a_completed_record_with_an_error_is_refused() -> None:
    """A run either completed (a result) or failed (its error): a record that says both is no result."""
    data = copy.deepcopy(_FUZZ_BASE)
    data["status"] = "completed"
    with pytest.raises(RecordError) as info:
        RunRecord.from_dict(data, source="record.json")
    assert str(info.value).startswith("record.json: error: a completed run has no error (null), got 'Runtime")
    data["error"] = None
    assert RunRecord.from_dict(data).status == "completed"


# regressions found by the fuzzing above: each escaped read_record as something other than RecordError


def test_regression_nesting_beyond_the_recursion_limit(tmp_path: Path) -> None:
    """``[[[...]]]`` 100000 deep made json.loads raise RecursionError."""
    file = tmp_path / "record.json"
    file.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RecordError, match=rf"^{file}: invalid JSON: nested too deeply$"):
        read_record(file)


def test_regression_integer_with_more_digits_than_int_reads(tmp_path: Path) -> None:
    """A 5000-digit integer made json.loads raise a plain ValueError (int()'s 4300-digit limit)."""
    data = copy.deepcopy(_FUZZ_BASE)
    data["iterations"] = _PLACEHOLDER.format(0)
    file = tmp_path / "record.json"
    file.write_text(_json_text(data, ["1" * 5000]))
    with pytest.raises(RecordError, match=rf"^{file}: invalid JSON: an integer with too many digits$"):
        read_record(file)


def test_regression_integer_beyond_the_float_range_in_a_float_field() -> None:
    """10**400 in a float field raised OverflowError from math.isfinite; now it is infinite, like 1e400."""
    data = copy.deepcopy(_FUZZ_BASE)
    data["metrics"]["bbox"]["AP"] = 10**400
    with pytest.raises(
        RecordError, match=r": metrics.bbox.AP: expected a number from 0 to 100 or null, got 1000"
    ):
        RunRecord.from_dict(data)
    data["metrics"]["bbox"]["AP"] = None
    data["variant"]["train_sample_ratio"] = -(10**400)
    with pytest.raises(
        RecordError, match=r": variant.train_sample_ratio: expected a finite number, got -1000"
    ):
        RunRecord.from_dict(data)


def test_regression_huge_schema_version_is_abbreviated() -> None:
    """A 401-digit schema_version was printed in full into the (one-line) error."""
    data = copy.deepcopy(_FUZZ_BASE)
    data["schema_version"] = 10**400
    with pytest.raises(RecordError, match=r"^<dict>: schema_version: version 1000+\.\.\. is newer") as info:
        RunRecord.from_dict(data)
    assert len(str(info.value)) < 150
