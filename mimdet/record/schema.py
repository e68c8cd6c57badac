"""The run record: one ``record.json`` per run, the contract between the run, the sweeps and the analysis.

A training run, and each evaluation of a trained run at another inference ratio, writes one record.
Everything downstream (status, tables, plots, cost estimates) reads these files and never parses logs.

The schema is defined once, here, as typed dataclasses. Reading validates every field against the type
hints and fails with one line that names the file, the field path and what was expected, e.g.
``runs/ab12/record.json: metrics.bbox.AP: expected a number or null, got 'x'``.

Evolving the schema: fields are added, never renamed or removed. A field added later gets a default in its
dataclass, and records written before it existed read with that default; fields without a default are
required. ``SCHEMA_VERSION`` goes up only for a change old readers must refuse, and a reader refuses
records newer than it knows. Unknown extra fields are ignored, so old code reads newer additive records.

Units: AP values in detectron2's COCO percent scale (0-100); times in seconds; memory in bytes.

Numbers: a record holds finite numbers only (a run's NaN, detectron2's AP for absent sizes, is written as
null); reading refuses NaN, Infinity, an AP outside 0-100, a negative cost or count and an integer beyond
64 bits (which no table's parquet column holds), naming the field; and a completed run with an error.
Such a record was changed by something else, and is no result.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from mimdet.record.atomic import read_at_most, write_json_atomic

SCHEMA_VERSION = 1
MAX_RECORD_BYTES = 16 * 2**20  # a record is a few KB; a larger file is not read further

Stage = Literal["train", "eval"]
Status = Literal["completed", "failed"]
Model = Literal["mimdet", "benchmarking"]
Sampling = Literal["random", "window", "all"]
FpnInputs = Literal["hybrid", "vit"]
DecoderFill = Literal["mask_token", "convstem"]
FlavorName = Literal["paper", "reference", "custom"]
PeakMemKind = Literal["cuda_max_allocated", "cpu_peak_rss_delta"]
Device = Literal["cuda", "cpu"]
# a number field's bounds, checked on reading
Percent = Annotated[float, (0.0, 100.0)]  # COCO AP in percent
Amount = Annotated[float, (0.0, math.inf)]  # a time, a rate: never negative
INT64 = (-(2**63), 2**63 - 1)  # every integer field's bounds: a parquet column of int64 holds it
Count = Annotated[int, (0, INT64[1])]  # iterations, parameters, bytes, devices


class RecordError(ValueError):
    """A record that cannot be read: one line naming the file, the field path and the problem."""

    def __init__(self, source: str, field: str | None, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(" ".join(f"{where}: {problem}".split()))


@dataclass
class Variant:
    """The model settings the paper's tables vary (mirrors the backbone's constructor arguments)."""

    model: Model
    embed_dim: int
    depth: int
    sampling: Sampling
    train_sample_ratio: float
    test_sample_ratio: float
    num_decoders: int
    fpn_inputs: FpnInputs
    decoder_fill: DecoderFill | None
    # which preset of mimdet.modeling.flavors the backbone's switches are: the paper's text or the released
    # models' code (added in 0.2; earlier records predate the reference flavor, so they are "paper")
    flavor: FlavorName = "paper"


@dataclass
class DatasetInfo:
    """Registered dataset names, so that runs on synthetic data never pass for COCO runs."""

    train: str
    test: str


@dataclass
class APMetrics:
    """COCO AP of one task in percent; None where the evaluation did not produce the value."""

    AP: Percent | None
    AP50: Percent | None
    AP75: Percent | None
    APs: Percent | None
    APm: Percent | None
    APl: Percent | None


@dataclass
class Metrics:
    """Box detection and instance segmentation results of the run's evaluation."""

    bbox: APMetrics
    segm: APMetrics


@dataclass
class ParamCounts:
    """Parameter counts with ``mimdet.modeling.param_count``'s convention (frozen tables included)."""

    total: Count
    per_component: dict[str, Count]


@dataclass
class Cost:
    """What the run cost; None where it was not measured (e.g. training time of an eval record)."""

    train_wall_time_s: Amount | None
    sec_per_iter: Amount | None
    peak_mem_bytes_bs1: Count | None
    peak_mem_kind: PeakMemKind | None
    inference_images_per_s: Amount | None
    # Multi-scale training meets new padded batch shapes, and a GPU's first step on a shape pays per-shape
    # set-up (kernel plans): the two kinds of step apart, medians after the warm-up (added in 0.2).
    sec_per_iter_repeated_shape: Amount | None = None
    sec_per_iter_new_shape: Amount | None = None
    batch_shapes: Count | None = None  # distinct padded batch shapes the timed steps met
    attention_backends: list[str] | None = None  # the attention kernels the model was allowed


@dataclass
class Hardware:
    """Where the run ran, so that costs are compared only like for like."""

    device: Device
    gpu_model: str | None
    gpu_count: Count  # GPUs the run used: one per process on CUDA, 0 on the CPU
    cpu_model: str | None
    processes: Count = 1  # training processes (the DDP world size), on any device


@dataclass
class RunRecord:
    """One run (train or eval): what was run, on what, with which outcome and at which cost."""

    schema_version: int
    run_id: str
    stage: Stage
    parent_run_id: str | None
    status: Status
    error: str | None
    created_at: str
    output_dir: str
    config_file: str
    overrides: list[str]
    code_version: str
    variant: Variant
    dataset: DatasetInfo
    iterations: Count
    metrics: Metrics
    params: ParamCounts
    cost: Cost
    hardware: Hardware
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data; non-finite floats (detectron2 reports NaN AP for absent sizes) become null."""
        return _finite_or_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: object, *, source: str = "<dict>") -> RunRecord:
        """Validate ``data`` (parsed JSON) and build the record; ``source`` names it in errors."""
        if not isinstance(data, dict):
            raise RecordError(source, None, f"expected a JSON object, got {describe_value(data)}")
        if "schema_version" not in data:
            raise RecordError(source, "schema_version", "missing")
        version = data["schema_version"]
        if type(version) is not int or version < 1:
            problem = f"expected a version number, got {describe_value(version)}"
            raise RecordError(source, "schema_version", problem)
        if version > SCHEMA_VERSION:
            raise RecordError(
                source,
                "schema_version",
                f"version {describe_value(version)} is newer than this code reads ({SCHEMA_VERSION}): "
                "update mimdet-ablate",
            )
        try:
            record = _build(cls, data, "")
        except _FieldError as err:
            raise RecordError(source, err.field, err.problem) from None
        if record.status == "completed" and record.error is not None:  # a result, or a failure: not both
            problem = f"a completed run has no error (null), got {describe_value(record.error)}"
            raise RecordError(source, "error", problem)
        return record


def utc_timestamp() -> str:
    """Now as ISO-8601 UTC to the second, the format of ``RunRecord.created_at``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_record(record: RunRecord, path: str | os.PathLike[str]) -> None:
    """Write atomically: readers see the old file or the new one, never a half-written one.

    The record is validated first (what is written can be read back), serialized into a uniquely named
    temporary file beside the target, flushed and fsynced, then renamed over the target with
    ``os.replace``. Concurrent writers of different records into one store never collide.
    """
    data = record.to_dict()
    RunRecord.from_dict(data, source=str(path))
    write_json_atomic(path, data)


def read_record(path: str | os.PathLike[str]) -> RunRecord:
    """Read and validate one record; any problem is a one-line ``RecordError`` naming file and field."""
    return parse_record(read_record_bytes(path), source=str(path))


def read_record_bytes(path: str | os.PathLike[str]) -> bytes:
    """A record file's bytes, at most ``MAX_RECORD_BYTES`` + 1 (``parse_record`` refuses more; see
    ``read_at_most``); a file that cannot be read is a one-line ``RecordError``."""
    source = str(path)
    try:
        return read_at_most(path, MAX_RECORD_BYTES)
    except FileNotFoundError:
        raise RecordError(source, None, "no such file") from None
    except OSError as err:
        raise RecordError(source, None, f"cannot read: {err.strerror}") from None


def parse_record(data: bytes, *, source: str) -> RunRecord:
    """Validate the bytes of a ``record.json`` read from ``source`` (named in errors) and build the record."""
    if len(data) > MAX_RECORD_BYTES:
        problem = f"larger than {MAX_RECORD_BYTES // 2**20} MiB, not a record (a record is a few KB)"
        raise RecordError(source, None, problem)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RecordError(source, None, "not UTF-8 text") from None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        raise RecordError(source, None, problem) from None
    except ValueError:  # int()'s digit limit (sys.get_int_max_str_digits) on an integer literal
        raise RecordError(source, None, "invalid JSON: an integer with too many digits") from None
    except RecursionError:
        raise RecordError(source, None, "invalid JSON: nested too deeply") from None
    return RunRecord.from_dict(parsed, source=source)


ROW_COLUMNS: tuple[str, ...] = (
    "run_id",
    "stage",
    "parent_run_id",
    "status",
    "error",
    "created_at",
    "output_dir",
    "config_file",
    "overrides",
    "code_version",
    "schema_version",
    *(f.name for f in dataclasses.fields(Variant)),
    "dataset_train",
    "dataset_test",
    "iterations",
    *(f"{task}_{f.name}" for task in ("bbox", "segm") for f in dataclasses.fields(APMetrics)),
    "params_total",
    *(f.name for f in dataclasses.fields(Cost)),
    *(f.name for f in dataclasses.fields(Hardware)),
)
"""The columns every row has, in order; rows add ``params_<component>`` and ``version_<package>``."""


def record_to_row(record: RunRecord) -> dict[str, Any]:
    """One flat row for a pandas DataFrame (one row per record).

    Columns (``ROW_COLUMNS``, then the per-record ones):

    - run identity and outcome: ``run_id``, ``stage``, ``parent_run_id``, ``status``, ``error``,
      ``created_at``, ``output_dir``, ``config_file``, ``overrides`` (the ``key=value`` strings joined by
      one space), ``code_version``, ``schema_version``;
    - the variant, by field name: ``model``, ``embed_dim``, ``depth``, ``sampling``,
      ``train_sample_ratio``, ``test_sample_ratio``, ``num_decoders``, ``fpn_inputs``, ``decoder_fill``;
    - ``dataset_train``, ``dataset_test``, ``iterations``;
    - metrics as ``<task>_<key>``: ``bbox_AP``, ``bbox_AP50``, ``bbox_AP75``, ``bbox_APs``, ``bbox_APm``,
      ``bbox_APl`` and the same six for ``segm_``;
    - ``params_total``, then ``params_<component>`` for each entry of ``params.per_component`` (an entry
      named ``total`` is left out: ``params.total`` is authoritative);
    - cost by field name: ``train_wall_time_s``, ``sec_per_iter``, ``peak_mem_bytes_bs1``,
      ``peak_mem_kind``, ``inference_images_per_s``;
    - hardware by field name: ``device``, ``gpu_model``, ``gpu_count``, ``cpu_model``, ``processes``;
    - ``version_<package>`` for each entry of ``versions`` (``version_python``, ``version_torch``, ...).
    """
    return {
        "run_id": record.run_id,
        "stage": record.stage,
        "parent_run_id": record.parent_run_id,
        "status": record.status,
        "error": record.error,
        "created_at": record.created_at,
        "output_dir": record.output_dir,
        "config_file": record.config_file,
        "overrides": " ".join(record.overrides),
        "code_version": record.code_version,
        "schema_version": record.schema_version,
        **_flat(record.variant),
        "dataset_train": record.dataset.train,
        "dataset_test": record.dataset.test,
        "iterations": record.iterations,
        **{f"bbox_{key}": value for key, value in _flat(record.metrics.bbox).items()},
        **{f"segm_{key}": value for key, value in _flat(record.metrics.segm).items()},
        "params_total": record.params.total,
        **{f"params_{name}": n for name, n in record.params.per_component.items() if name != "total"},
        **_flat(record.cost),
        **_flat(record.hardware),
        **{f"version_{name}": version for name, version in record.versions.items()},
    }


def _flat(section: object) -> dict[str, Any]:
    """A record section of plain values as a dict: ``dataclasses.asdict`` without its deep copy, which
    was most of the time of a 10,000-record table."""
    cls: type = type(section)
    return {name: getattr(section, name) for name, _, _ in _fields(cls)}


# --- validation: one generic walk over the dataclasses' type hints ---------------------------------------


class _FieldError(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem


def describe_value(value: object, mapping: str = "an object") -> str:
    """A short rendering of a bad value for a one-line error message (records, specs)."""
    if isinstance(value, dict):
        return mapping
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(field: str, expected: str, nullable: bool, value: object) -> typing.NoReturn:
    raise _FieldError(
        field, f"expected {expected}{' or null' if nullable else ''}, got {describe_value(value)}"
    )


Shape = tuple[str, Any]  # a type hint as a check: ("optional", Shape), ("list", Shape), ("float", None), ...


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Shape, bool], ...]:
    """(name, shape, required) of each field of dataclass ``cls``, worked out once per class: reading
    10,000 records in a ``sweep status`` checks ~700,000 values, and hashing type hints was half of it."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple(
        (
            field.name,
            _shape(hints[field.name]),
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(cls)
    )


def _shape(tp: Any) -> Shape:
    """The check type hint ``tp`` asks for, with its inner types' shapes."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]  # only `X | None` unions
        return "optional", _shape(inner)
    if origin is Annotated:  # a number's bounds (Percent, Count): ("float", (low, high))
        inner, bounds = typing.get_args(tp)
        if inner not in (float, int):
            raise TypeError(f"record schema bounds a type other than a number: {tp!r}")
        return inner.__name__, bounds
    if tp is int:  # a plain float's bounds are None (finite), a plain int's are those of int64
        return "int", INT64
    if dataclasses.is_dataclass(tp):
        return "dataclass", tp
    if origin is Literal:
        return "literal", typing.get_args(tp)
    if origin is list:
        return "list", _shape(typing.get_args(tp)[0])
    if origin is dict:
        return "dict", _shape(typing.get_args(tp)[1])
    if tp in (float, str):
        return tp.__name__, None
    raise TypeError(f"record schema uses an unsupported type: {tp!r}")


def _build(cls: type, data: object, where: str) -> Any:
    """Instantiate dataclass ``cls`` from JSON ``data``, checking each field against its type hint."""
    if not isinstance(data, dict):
        _fail(where, "an object", False, data)
    values = {}
    for name, shape, required in _fields(cls):
        if name in data:
            values[name] = _convert(shape, data[name], f"{where}.{name}" if where else name, nullable=False)
        elif required:
            raise _FieldError(f"{where}.{name}" if where else name, "missing")
    return cls(**values)


def _convert(shape: Shape, value: object, where: str, *, nullable: bool) -> Any:
    """``value`` checked against (and converted to) a field's ``shape``; bool never passes for a number."""
    kind, arg = shape
    if kind == "optional":
        return None if value is None else _convert(arg, value, where, nullable=True)
    if kind == "str":
        if isinstance(value, str):
            return value
        _fail(where, "a string", nullable, value)
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range, e.g. 10**400: infinite, as 1e400
                number = math.inf
            low, high = arg or (-math.inf, math.inf)
            if math.isfinite(number) and low <= number <= high:
                return number
            _fail(where, "a finite number" if arg is None else _range("a number", *arg), nullable, value)
        _fail(where, "a number", nullable, value)
    if kind == "int":
        if type(value) is int:
            if arg[0] <= value <= arg[1]:
                return value
            _fail(where, _range("an integer", *arg), nullable, value)
        _fail(where, "an integer", nullable, value)
    if kind == "dataclass":
        if not isinstance(value, dict):
            _fail(where, "an object", nullable, value)
        return _build(arg, value, where)
    if kind == "literal":
        if isinstance(value, str) and value in arg:
            return value
        _fail(where, "one of " + ", ".join(repr(c) for c in arg), nullable, value)
    if kind == "list":
        if not isinstance(value, list):
            _fail(where, "a list", nullable, value)
        return [_convert(arg, v, f"{where}[{i}]", nullable=False) for i, v in enumerate(value)]
    if not isinstance(value, dict):  # kind == "dict"
        _fail(where, "an object", nullable, value)
    for key in value:
        if not isinstance(key, str):
            raise _FieldError(where, f"expected string keys, got {describe_value(key)}")
    return {k: _convert(arg, v, f"{where}.{k}", nullable=False) for k, v in value.items()}


def _range(noun: str, low: float, high: float) -> str:
    """``a number from 0 to 100``, ``an integer from 0 to 2**63-1``, ``a number of 0 or more``."""
    names: dict[float, str] = {INT64[0]: "-2**63", INT64[1]: "2**63-1"}
    low_text, high_text = (names.get(bound, f"{bound:g}") for bound in (low, high))
    return f"{noun} of {low_text} or more" if high == math.inf else f"{noun} from {low_text} to {high_text}"


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value
