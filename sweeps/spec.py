"""Sweep specs: the YAML file that says which runs regenerate a paper table, checked before anything runs.

A spec names a base config, fixed overrides for every run, a training grid and an evaluation grid that
every training gets::

    name: table2
    table: table2                       # the paper table it regenerates (optional)
    base_config: experiments/mimdet_vit_base.py
    overrides: {dataloader.train.total_batch_size: 64}
    train:
      grid: product                     # product | zip | rows
      axes: {model.backbone.bottom_up.train_sample_ratio: [0.125, 0.25, 0.5, 0.75, 1.0]}
      resources: {nodes: 4, gpus_per_node: 8}
    eval:
      axes: {model.backbone.bottom_up.test_sample_ratio: [0.125, 0.25, 0.5, 0.75, 1.0]}
      filter: test_sample_ratio >= train_sample_ratio
    executor: slurm

Grids: ``product`` crosses the axes, ``zip`` pairs them up value by value, ``rows`` lists the trainings
one by one (``{label, overrides, base_config}``); a row may name its own ``base_config`` so that one
table compares different models (Table 1: MIMDet against the Benchmarking ViT). A grid without axes is
one training; ``eval: {}`` is one evaluation per training at the config's own test settings, and no
``eval`` section means no evaluations. ``train: {checkpoint: PATH}`` trains nothing: the evaluations
evaluate that file (a released model after ``python -m mimdet.convert_reference``), which needs to
exist only when the sweep runs. Evaluation axes vary only what an evaluation reads (the test sample
ratio, ``eval_seed``, a model's ``test_*`` keys, ``dataloader.test`` and ``dataloader.evaluator``): the
weights it loads were trained with everything else. A filter is a tiny expression language
(comparisons, ``and``, ``or``, ``not``, parentheses, numbers, strings) over the axis names — the last
component of each axis key, and ``row`` for a rows grid — parsed with ``ast`` and evaluated node by
node, never by ``eval``.

Base config paths may be given relative to the working directory, to ``experiments/``, to the repository
or to the spec's folder; after loading, ``base_config`` holds a path that works from the working
directory. Every ``key=value`` the spec can produce is checked against the base config it applies to
(``mimdet.run.resolve``: the key exists, the value has its type), and every sample ratio and decoder count
by the model's own checks (``check_sample_ratio``, ``check_num_decoders``), once per distinct pair and,
through ``sweeps.config_cache``, once per machine while the code and configs are unchanged.

Bounds. A spec file is at most 4 MiB and nests at most 64 levels; YAML aliases may repeat at most
100,000 values in all (an alias of an alias of ... — a "billion laughs" — is refused before it is
expanded); a spec makes at most ``max_runs`` runs (5,000 unless the spec sets it: counted before the
filter, as trainings x evaluations per training). Text that reaches ``sbatch`` or its job script is
checked by ``sweeps.safe_text``.

Every problem is one ``SpecError`` line, ``FILE:LINE: key.path: problem (allowed: ...)``. Loading checks
everything the spec shows on its own; the two problems that need the expanded runs — two cells that are
the same run, a filter comparing values that do not compare — are raised by ``sweeps.expand.expand`` as
``SpecError`` lines too.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, JsonValue, PrivateAttr, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent, ScalarEvent
from ruamel.yaml.scalarbool import ScalarBoolean

from mimdet.paper.tables import PAPER_TABLES
from mimdet.record.atomic import read_at_most
from mimdet.record.schema import describe_value
from mimdet.run.config import EXPERIMENTS, ConfigFileError, first_config_file
from mimdet.run.overrides import TEST_TIME_KEYS, override_string
from mimdet.run.resolve import resolve_run

from . import safe_text
from .config_cache import cached, parsed_override
from .filters import compile_filter
from .runs import Resources

KeyPath = tuple[str | int, ...]  # a position in the spec: keys and list indexes from the top
MAX_SPEC_BYTES = 4 * 2**20
MAX_DEPTH = 64
MAX_ALIAS_VALUES = 100_000
MAX_DIGITS = 4_000  # Python refuses to read integers of more than 4,300 digits
DEFAULT_MAX_RUNS = 5_000
SLURM_MAX_16 = 2**16 - 2  # SLURM keeps NO_VAL (all bits set) apart in each field
SLURM_MAX_32 = 2**32 - 2
_DEFAULT = Resources()
EVAL_PREFIXES = ("dataloader.test.", "dataloader.evaluator.")  # read by an evaluation only


class SpecError(ValueError):
    """A spec that cannot run, as one line: ``FILE:LINE: key.path: problem (allowed: ...)``.

    ``SpecError.at`` builds that line and keeps its parts; a caller with no position to give (the CLI
    naming a run the sweep lacks) passes the whole line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
        self.source: str | None = None
        self.line: int | None = None
        self.path: str | None = None
        self.problem = str(self)

    @classmethod
    def at(cls, source: str, line: int, path: str, problem: str) -> SpecError:
        error = cls(f"{source}:{line}: {path}: {problem}")
        error.source, error.line, error.path, error.problem = source, line, path, " ".join(problem.split())
        return error


# --- the schema --------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ResourcesSpec(_Section):
    """A stage's job request; defaults and meaning are ``sweeps.runs.Resources``'s. Upper bounds are what
    SLURM's fields hold (16-bit CPU and GPU counts, 32-bit nodes and minutes, memory in MB below 2**63):
    a larger number would be refused by every ``sbatch`` try, or overflow before it (``mem_gb: .inf``)."""

    nodes: int = Field(_DEFAULT.nodes, ge=1, le=SLURM_MAX_32)
    gpus_per_node: int = Field(_DEFAULT.gpus_per_node, ge=0, le=SLURM_MAX_16)
    cpus_per_task: int = Field(_DEFAULT.cpus_per_task, ge=1, le=SLURM_MAX_16)
    mem_gb: float | None = Field(_DEFAULT.mem_gb, gt=0, le=2**53, allow_inf_nan=False)
    time_min: int = Field(_DEFAULT.time_min, ge=1, le=SLURM_MAX_32)
    partition: str | None = _DEFAULT.partition
    account: str | None = _DEFAULT.account
    qos: str | None = _DEFAULT.qos
    constraint: str | None = _DEFAULT.constraint
    sbatch_extra: dict[str, str] = Field(default_factory=dict)
    max_in_flight: int = Field(_DEFAULT.max_in_flight, ge=1, le=SLURM_MAX_32)

    def to_resources(self) -> Resources:
        return Resources(**{f.name: getattr(self, f.name) for f in fields(Resources)})


class Row(_Section):
    """One training of a ``rows`` grid; ``base_config`` replaces the spec's for this row only."""

    label: str = Field(min_length=1)
    base_config: str | None = None
    overrides: dict[str, JsonValue] = Field(default_factory=dict)


class TrainStage(_Section):
    checkpoint: str | None = Field(None, min_length=1)  # a model trained elsewhere: evaluated, not trained
    grid: Literal["product", "zip", "rows"] = "product"
    axes: dict[str, list[JsonValue]] = Field(default_factory=dict)
    rows: list[Row] = Field(default_factory=list)
    resources: ResourcesSpec = Field(default_factory=lambda: ResourcesSpec.model_validate({}))


class EvalStage(_Section):
    axes: dict[str, list[JsonValue]] = Field(default_factory=dict)
    filter: str | None = None
    resources: ResourcesSpec = Field(default_factory=lambda: ResourcesSpec.model_validate({}))


if typing.TYPE_CHECKING:
    TableName = str
else:  # the registry's names, checked and listed in errors as any Literal
    TableName = Literal[tuple(PAPER_TABLES)]


class SweepSpec(_Section):
    """A validated spec; ``error(path, problem)`` turns a later problem into a ``SpecError`` line."""

    name: str  # checked by safe_text.sweep_name_problem
    table: TableName | None = None
    base_config: str
    root: str | None = Field(None, min_length=1)
    overrides: dict[str, JsonValue] = Field(default_factory=dict)
    train: TrainStage
    eval: EvalStage | None = None
    executor: Literal["local", "slurm"] = "local"
    max_runs: int = Field(DEFAULT_MAX_RUNS, ge=1)

    _source: str = PrivateAttr("<spec>")
    _lines: dict[KeyPath, int] = PrivateAttr(default_factory=dict)

    def error(self, path: KeyPath, problem: str) -> SpecError:
        """A ``SpecError`` at ``path`` (keys and indexes from the top), with the line it was written on."""
        return SpecError.at(self._source, _line_of(self._lines, path), _dotted(path), problem)

    def axis_names(self) -> list[str]:
        """The names a filter and a run's ``cell`` use: the last component of each axis key."""
        train = ["row"] if self.train.grid == "rows" else [axis_name(key) for key in self.train.axes]
        return train + [axis_name(key) for key in (self.eval.axes if self.eval else {})]


def axis_name(key: str) -> str:
    return key.rsplit(".", 1)[-1]


# --- loading ---------------------------------------------------------------------------------------------


def load_spec(path: str | Path) -> SweepSpec:
    """Read, parse and check a spec file; any problem is a one-line ``SpecError``."""
    source = str(path)
    try:
        text = read_at_most(path, MAX_SPEC_BYTES, whole_pipe=True).decode("utf-8")
    except OSError as error:  # its strerror: the path is the line's first word already
        raise SpecError.at(source, 1, "(file)", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.object[error.start]:#04x} at offset {error.start})"
        raise SpecError.at(source, 1, "(file)", problem) from None
    return parse_spec(text, source=source, spec_dir=Path(path).parent)


def parse_spec(text: str, *, source: str = "<string>", spec_dir: Path | None = None) -> SweepSpec:
    """``load_spec`` for text in hand; relative base configs may also be found in ``spec_dir``."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SPEC_BYTES:
        problem = f"larger than {MAX_SPEC_BYTES // 2**20} MiB (allowed: a spec of at most that size)"
        raise SpecError.at(source, 1, "(file)", problem)
    lines: dict[KeyPath, int] = {}
    data = _plain(_parse_yaml(text, source), (), lines)
    if data is None:
        raise SpecError.at(
            source, 1, "(top level)", f"empty spec (allowed: {', '.join(SweepSpec.model_fields)})"
        )
    if not isinstance(data, dict):
        raise SpecError.at(
            source, 1, "(top level)", f"expected a mapping of keys, got {_describe_yaml(data)}"
        )
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        raise _first_problem(error, data, lines, source) from None
    spec._source = source
    spec._lines = lines
    _check(spec, spec_dir or Path.cwd())
    return spec


def _parse_yaml(text: str, source: str) -> Any:
    _check_brackets(text, source)
    yaml = YAML(typ="rt")
    try:
        _check_shape(yaml.parse(text), source)
        return yaml.load(text)
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        raise SpecError.at(
            source, line, "(YAML syntax)", f"{problem}{f' ({context})' if context else ''}"
        ) from None


def _check_brackets(text: str, source: str) -> None:
    """Refuse flow brackets (``[[[[...``) nested deeper than ``MAX_DEPTH`` from the text alone: ruamel's
    scanner looks ahead over all of them (seconds for a few thousand) before its first event. Brackets
    inside strings count too; a spec needs nowhere near that many."""
    depth = 0
    for bracket in re.finditer(r"[\[\]{}]", text):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, bracket.start()) + 1
            problem = f"brackets nested deeper than {MAX_DEPTH} levels (allowed: at most {MAX_DEPTH})"
            raise SpecError.at(source, line, "(YAML)", problem)


def _check_shape(events: Iterator[Any], source: str) -> None:
    """Refuse, from the parser's events and before anything is built, a document that nests too deep or
    whose aliases repeat too many values; ``_plain`` would expand every alias (9 aliases of 9 aliases,
    9 levels down, are 387 million values), and ruamel builds nested nodes by recursion.

    Each open collection counts its values, aliases counted at the size of what they name.
    """
    open_nodes: list[list[Any]] = []  # [anchor, values, levels below] of each open collection
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, levels)
    repeated = 0

    def refuse(event: Any, problem: str) -> NoReturn:
        raise SpecError.at(source, event.start_mark.line + 1, "(YAML)", problem)

    def add(values: int, levels: int) -> None:
        if open_nodes:
            open_nodes[-1][1] += values
            open_nodes[-1][2] = max(open_nodes[-1][2], levels)

    for event in events:
        if isinstance(event, CollectionStartEvent):
            if len(open_nodes) >= MAX_DEPTH:
                refuse(event, f"nested deeper than {MAX_DEPTH} levels (allowed: at most {MAX_DEPTH})")
            open_nodes.append([event.anchor, 1, 1])
        elif isinstance(event, CollectionEndEvent):
            anchor, values, levels = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = (values, levels)
            add(values, levels + 1)
        elif isinstance(event, AliasEvent):
            values, levels = sizes.get(event.anchor, (1, 0))  # an unknown one: ruamel says so next
            repeated += values
            if repeated > MAX_ALIAS_VALUES:
                problem = f"aliases repeat more than {MAX_ALIAS_VALUES:,} values (allowed: at most that many)"
                refuse(event, problem)
            if len(open_nodes) + levels > MAX_DEPTH:
                refuse(event, f"an alias nests deeper than {MAX_DEPTH} levels (allowed: at most {MAX_DEPTH})")
            add(values, levels)
        elif isinstance(event, ScalarEvent):
            if event.style is None and len(event.value) > MAX_DIGITS and event.value.lstrip("+-").isdigit():
                refuse(event, f"a number of {len(event.value):,} digits (allowed: at most {MAX_DIGITS:,})")
            if event.anchor is not None:
                sizes[event.anchor] = (1, 0)
            add(1, 0)
        elif isinstance(event, NodeEvent):
            add(1, 0)


def _plain(node: Any, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    """ruamel's round-trip nodes as plain Python data, recording the line of every key and item."""
    if isinstance(node, dict):
        plain = {}
        for key, value in node.items():
            key = _scalar(key)
            lines[(*path, key)] = _node_line(node, key) or lines.get(path, 1)
            plain[key] = _plain(value, (*path, key), lines)
        return plain
    if isinstance(node, list):
        for index in range(len(node)):
            lines[(*path, index)] = _item_line(node, index) or lines.get(path, 1)
        return [_plain(value, (*path, i), lines) for i, value in enumerate(node)]
    return _scalar(node)


def _node_line(node: Any, key: Any) -> int | None:
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None  # a key merged in through `<<:` has no line of its own


def _item_line(node: Any, index: int) -> int | None:
    try:
        return int(node.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def _scalar(value: Any) -> Any:
    """ruamel's scalar subclasses (ScalarFloat, ScalarInt, ScalarBoolean, quoted strings) as plain types."""
    if isinstance(value, ScalarBoolean):
        return bool(value)  # an int subclass: test it before int
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _line_of(lines: Mapping[KeyPath, int], path: KeyPath) -> int:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return min(lines.values(), default=1)


def _dotted(path: KeyPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe_yaml(value: object) -> str:
    return describe_value(value, mapping="a mapping")


# --- schema errors: the first one, as a line -------------------------------------------------------------


def _first_problem(error: ValidationError, data: Any, lines: dict[KeyPath, int], source: str) -> SpecError:
    problems = []
    for detail in error.errors():
        path = _data_path(detail["loc"], data, keep_last=detail["type"] in ("missing", "extra_forbidden"))
        missing = detail["type"] == "missing"  # sorted last: a misspelt key explains a missing one
        problems.append((missing, _line_of(lines, path), path, _problem_text(detail, path)))
    _, line, path, problem = min(problems, key=lambda p: p[:2])
    return SpecError.at(source, line, _dotted(path), problem)


def _data_path(loc: tuple[Any, ...], data: Any, *, keep_last: bool) -> KeyPath:
    """The part of pydantic's location that names data (its union-member tags left out)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif keep_last and index == len(loc) - 1:
            pass
        else:
            break
        path.append(part)
    return tuple(path)


def _problem_text(detail: Any, path: KeyPath) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        allowed = _fields_at(path[:-1])
        close = difflib.get_close_matches(str(path[-1]), allowed, n=3)
        hint = f", did you mean {' or '.join(close)}?" if close else ""
        return f"unknown key{hint} (allowed: {', '.join(allowed)})"
    if kind == "literal_error":
        expected = detail["ctx"]["expected"].replace(" or ", ", ")
        return f"{_describe_yaml(detail['input'])} is not allowed (allowed: {expected})"
    message = str(detail["msg"]).replace("Input should be", "should be")
    return f"{message}, got {_describe_yaml(detail['input'])}"


def _fields_at(path: KeyPath) -> list[str]:
    """The keys the schema allows at ``path`` (a section of the spec)."""
    model: Any = SweepSpec
    for part in path:
        if isinstance(part, int):
            continue  # into a list of rows: the row model is already selected below
        if part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        model = next(
            (a for a in _walk_types(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        if model is None:
            return []
    return list(model.model_fields)


def _walk_types(annotation: Any) -> Iterator[Any]:
    yield annotation
    for inner in getattr(annotation, "__args__", ()):
        yield from _walk_types(inner)


# --- checks beyond the schema ----------------------------------------------------------------------------


def _check(spec: SweepSpec, spec_dir: Path) -> None:
    if problem := safe_text.sweep_name_problem(spec.name):  # first, as the schema's checks are
        raise spec.error(("name",), problem)
    _check_grid(spec)
    _check_size(spec)
    _check_scheduler_text(spec)
    _check_axis_names(spec)
    _check_eval_axes(spec)
    _check_base_configs(spec, spec_dir)
    _check_values(spec)
    if spec.eval is not None and spec.eval.filter is not None:
        try:
            compile_filter(spec.eval.filter, spec.axis_names())
        except ValueError as error:
            raise spec.error(("eval", "filter"), str(error)) from None


def _check_grid(spec: SweepSpec) -> None:
    train = spec.train
    if train.checkpoint is not None:
        given = [key for key in ("axes", "rows") if getattr(train, key)]
        if given or train.grid != "product":
            key = given[0] if given else "grid"
            raise spec.error(
                ("train", key), "a checkpoint is evaluated, not trained: no grid (allowed: resources)"
            )
        if spec.eval is None:
            raise spec.error(("train", "checkpoint"), "nothing to do: add an eval section to evaluate it")
        if problem := safe_text.home_problem(train.checkpoint):
            raise spec.error(("train", "checkpoint"), problem)
        train.checkpoint = str(Path(train.checkpoint).expanduser().absolute())
    if train.grid == "rows":
        if train.axes:
            raise spec.error(("train", "axes"), "a rows grid takes rows, not axes (allowed: rows)")
        if not train.rows:
            raise spec.error(("train", "rows"), "empty: a rows grid needs at least one row")
        labels: set[str] = set()
        for index, row in enumerate(train.rows):
            if problem := safe_text.label_problem(row.label):
                raise spec.error(("train", "rows", index, "label"), problem)
            if row.label in labels:
                raise spec.error(("train", "rows", index, "label"), f"duplicate row label {row.label!r}")
            labels.add(row.label)
    elif train.rows:
        raise spec.error(
            ("train", "rows"), f"rows are for grid: rows, this grid is {train.grid} (allowed: axes)"
        )
    stages = [("train", train.axes)] + ([("eval", spec.eval.axes)] if spec.eval else [])
    for stage, axes in stages:
        for key, values in axes.items():
            if not values:
                raise spec.error((stage, "axes", key), "empty axis: give at least one value")
    if train.grid == "zip":
        lengths = {key: len(values) for key, values in train.axes.items()}
        first = next(iter(lengths), None)
        for key, length in lengths.items():
            if first is not None and length != lengths[first]:
                problem = f"zip axes differ in length: {length} values here, {lengths[first]} in {first}"
                raise spec.error(("train", "axes", key), problem)


def _check_size(spec: SweepSpec) -> None:
    """At most ``max_runs`` runs, counted from the axes' lengths before anything is expanded."""
    train = spec.train
    if train.grid == "rows":
        trainings = len(train.rows)
    elif train.grid == "zip":
        trainings = len(next(iter(train.axes.values()), [None]))
    else:
        trainings = math.prod(len(values) for values in train.axes.values())
    per_training = math.prod(len(values) for values in spec.eval.axes.values()) if spec.eval else 0
    runs = trainings * (1 + per_training)
    if runs > spec.max_runs:
        where = ("train", "rows") if train.grid == "rows" else ("train", "axes")
        filtered = " before the filter" if spec.eval is not None and spec.eval.filter else ""
        problem = (
            f"the grid makes {runs:,} runs ({trainings:,} trainings, {per_training:,} evaluations each"
            f"{filtered}), more than max_runs {spec.max_runs:,} (allowed: at most max_runs runs; "
            f"for a sweep this large set max_runs: {runs} at the top of the spec)"
        )
        raise spec.error(where, problem)


def _check_scheduler_text(spec: SweepSpec) -> None:
    """Every field that reaches ``sbatch`` or the job script, by ``sweeps.safe_text``'s rules."""
    checks: list[tuple[KeyPath, str | None]] = []
    stages = [("train", spec.train.resources)] + ([("eval", spec.eval.resources)] if spec.eval else [])
    for stage, resources in stages:
        for field, check in (
            ("partition", safe_text.slurm_name_problem),
            ("account", safe_text.slurm_name_problem),
            ("qos", safe_text.slurm_name_problem),
            ("constraint", safe_text.constraint_problem),
        ):
            value = getattr(resources, field)
            if value is not None:
                checks.append(((stage, "resources", field), check(value)))
        for key, value in resources.sbatch_extra.items():
            checks.append(
                ((stage, "resources", "sbatch_extra", key), safe_text.sbatch_option_problem(key, value))
            )
    if spec.root is not None:
        checks.append((("root",), safe_text.store_root_problem(spec.root)))
    checks.append((("base_config",), safe_text.path_problem(spec.base_config)))
    for index, row in enumerate(spec.train.rows):
        if row.base_config is not None:
            checks.append((("train", "rows", index, "base_config"), safe_text.path_problem(row.base_config)))
    for path, problem in checks:
        if problem is not None:
            raise spec.error(path, problem)


def _check_axis_names(spec: SweepSpec) -> None:
    """Names must be unique (cells and filters use them), and a key varies in one place only."""
    seen: dict[str, KeyPath] = {}
    reserved = {"row"} if spec.train.grid == "rows" else set()
    stages = [("train", spec.train.axes)] + ([("eval", spec.eval.axes)] if spec.eval else [])
    for stage, axes in stages:
        for key in axes:
            path: KeyPath = (stage, "axes", key)
            name = axis_name(key)
            if name in seen or name in reserved:
                other = _dotted(seen[name]) if name in seen else "the rows grid's row label"
                raise spec.error(path, f"axis name {name!r} is already used by {other}")
            if key in spec.overrides:
                raise spec.error(path, f"also a fixed override (overrides.{key}): give it in one place")
            seen[name] = path


def _check_eval_axes(spec: SweepSpec) -> None:
    """An evaluation loads its training's weights, so its axes may vary only how they are evaluated: a
    ``num_decoders`` that does not fit the weights fails every evaluation at run time, an ``optimizer.lr``
    is ignored and shows one number under two labels."""
    for key in spec.eval.axes if spec.eval else {}:
        test_time = key.startswith("model.") and axis_name(key).startswith("test_")
        if not (test_time or key in TEST_TIME_KEYS or key.startswith(EVAL_PREFIXES)):
            allowed = [*TEST_TIME_KEYS, "model keys named test_*", *(p + "*" for p in EVAL_PREFIXES)]
            problem = (
                f"{axis_name(key)} is a training setting: an evaluation loads its training's weights and "
                f"cannot change it (allowed in eval.axes: the settings an evaluation reads, "
                f"{', '.join(allowed)}; vary it in train.axes)"
            )
            raise spec.error(("eval", "axes", key), problem)


def _check_base_configs(spec: SweepSpec, spec_dir: Path) -> None:
    """Resolve and load every base config once; ``base_config`` fields become runnable paths."""
    entries: list[tuple[KeyPath, Any]] = [(("base_config",), spec)]
    entries += [
        (("train", "rows", i, "base_config"), r) for i, r in enumerate(spec.train.rows) if r.base_config
    ]
    for path, holder in entries:
        name = holder.base_config
        try:
            found = _find_config(name, spec_dir)
        except ConfigFileError as error:
            raise spec.error(path, str(error)) from None
        if found is None:
            folders = dict.fromkeys(str(f) for f in (Path.cwd(), EXPERIMENTS, EXPERIMENTS.parent, spec_dir))
            where = ", ".join(folders)
            raise spec.error(path, f"config file not found: {name} (looked in {where})")
        holder.base_config = found
        try:
            cached("loads", found, None, functools.partial(_loads, found))
        except ConfigFileError as error:  # already one line naming the file and where
            raise spec.error(path, str(error)) from None
        except Exception as error:  # noqa: BLE001 — a broken config file is a spec problem to report
            reason = (str(error).splitlines() or [""])[0]
            raise spec.error(path, f"cannot load config {name}: {type(error).__name__}: {reason}") from None


def _find_config(name: str, spec_dir: Path) -> str | None:
    """A path to config ``name`` that works from the working directory, or None; ``ConfigFileError`` where
    the first thing of that name is not a file (``first_config_file``)."""
    if first_config_file(name, (Path(), EXPERIMENTS)) is not None:
        return name  # as written: mimdet.run.config.resolve_config_path finds it so
    path = first_config_file(name, (EXPERIMENTS.parent, spec_dir))
    return None if path is None else str(path.resolve())


def _loads(config_file: str) -> bool:
    """True, or the config's own error (which ``_check_base_configs`` reports)."""
    resolve_run(config_file)
    return True


def _override_problem(config_file: str, override: str) -> str | None:
    """Why the config does not resolve with ``override`` (``mimdet.run.resolve``'s OverrideError), or None."""
    try:
        resolve_run(config_file, [override])
    except ValueError as error:  # OverrideError included
        return str(error)
    return None


def _check_values(spec: SweepSpec) -> None:
    """Each ``key: value`` the spec can produce: its range, then the base config of every run it reaches."""
    rows = spec.train.rows if spec.train.grid == "rows" else []
    trained = list(dict.fromkeys([r.base_config or spec.base_config for r in rows] or [spec.base_config]))
    checked: set[tuple[str, str]] = set()

    def check(path: KeyPath, key: str, value: Any, targets: list[str]) -> None:
        _check_range(spec, path, key, value)
        try:
            override = override_string(key, value, parsed_override)
        except ValueError as error:
            raise spec.error(path, str(error)) from None
        for target in targets:
            if (target, override) not in checked:
                check = functools.partial(_override_problem, target, override)
                problem = cached("override", target, override, check)
                if problem is not None:
                    raise spec.error(path, _without_prefix(problem))
                checked.add((target, override))

    for key, value in spec.overrides.items():
        check(("overrides", key), key, value, trained)
    for key, values in spec.train.axes.items():
        for index, value in enumerate(values):
            check(("train", "axes", key, index), key, value, [spec.base_config])
    for row_index, row in enumerate(rows):
        for key, value in row.overrides.items():
            path: KeyPath = ("train", "rows", row_index, "overrides", key)
            check(path, key, value, [row.base_config or spec.base_config])
    for key, values in (spec.eval.axes if spec.eval else {}).items():
        for index, value in enumerate(values):
            check(("eval", "axes", key, index), key, value, trained)


def _check_range(spec: SweepSpec, path: KeyPath, key: str, value: Any) -> None:
    """A sample ratio or decoder count the model refuses on its own, whatever config it goes to; the
    model's answer is kept per machine (``sweeps.config_cache``): asking it imports torch."""
    name = axis_name(key)
    if name.endswith("sample_ratio") or name == "num_decoders":
        problem = cached("argument", None, [name, value], functools.partial(_argument_problem, name, value))
        if problem is not None:
            raise spec.error(path, problem)


def _argument_problem(name: str, value: Any) -> str | None:
    """The model's line refusing ``value`` as a sample ratio (``name``) or a decoder count, or None."""
    from mimdet.modeling.mimdet_backbone import check_num_decoders
    from mimdet.modeling.token_sampler import check_sample_ratio

    try:
        check_num_decoders(value) if name == "num_decoders" else check_sample_ratio(value, name)
    except ValueError as error:
        return str(error)
    return None


def _without_prefix(message: str) -> str:
    """OverrideError's problem without its ``bad override '...':`` lead (the key path says where)."""
    match = re.match(r"bad override (?:'[^']*'|\"[^\"]*\"): ", message)
    return message[match.end() :] if match else message
