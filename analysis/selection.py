"""Which run fills a cell of a paper table: the rules ``analysis.tables`` and ``analysis.plots`` share.

A table and its figure must never disagree, so both select, group and pick runs with these functions:

- ``select_rows`` keeps the rows of one table's fixed setting (``merge_criteria``: the table's base
  selection, overridden by the caller's ``where``), checked for what every cell relies on;
- ``group_cells`` groups them by the table's axis columns, ``training_rows`` / ``evaluation_rows`` keep
  those that can carry training cost resp. AP;
- ``pick_run`` / ``pick_training`` choose a cell's runs: completed rows win, otherwise the most advanced
  state, otherwise ``missing``. Completed rows that differ only in ``train.seed`` or ``eval_seed`` (their
  ``overrides`` compared, keys that cannot change a result left out) are repeats, and the cell's values
  are their mean: the tiny model's run-to-run noise is larger than the paper's differences within a row.
  Of the same setting and seeds, the latest (by ``created_at``, then ``run_id``) counts; any other
  difference is refused, as a table has no axis to show it on.

Input the rules cannot serve raises ``TableError``, one sentence naming the table and the problem.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from mimdet.paper.published import load_paper_csv
from mimdet.paper.tables import PAPER_TABLES
from mimdet.record.schema import Variant
from mimdet.run.overrides import OverrideError, ignored_keys, is_ignored, parse_override

_N = TypeVar("_N", int, float)

COMPLETED = "completed"
MISSING = "missing"
# shown in this order of precedence
PENDING_STATES = ("running", "queued", "new", "interrupted", "failed", "cancelled")
VARIANT_COLUMNS = (
    *(f.name for f in dataclasses.fields(Variant)),
    "dataset_train",
    "dataset_test",
    "iterations",
)
TRAINING_COLUMNS = tuple(c for c in VARIANT_COLUMNS if c != "test_sample_ratio")  # what training depends on
SCALE_COLUMNS = ("embed_dim", "depth", "dataset_train", "dataset_test")
# runs that differ only in these are repeats of one setting (another training draw, another evaluation
# draw of the kept tokens): a cell averages them
REPEAT_KEYS = ("train.seed", "model.backbone.bottom_up.eval_seed")
VARIANT_PREFIX = "model.backbone."  # its keys named as a variant column are compared by that column
UNSET = "unset"  # an override a run does not give, as the refusal names it


class TableError(ValueError):
    """Input a table cannot be rendered from, said in one sentence."""


def as_float(value: object, scale: float = 1.0) -> float | None:
    """A number from a row or a paper CSV; None for null/NaN and for words such as the paper's "oom"."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number * scale if math.isfinite(number) else None


@dataclass(frozen=True, eq=False)
class Pick:
    """A cell's runs: its state and, when completed, the rows it averages (one per seed, the latest last)
    and how many seeds the cell has, completed or not, so that a partial mean never looks final."""

    state: str
    runs: pd.DataFrame | None = None  # a frame, not dicts: a cell of a large store averages thousands
    planned: int = 1

    @property
    def count(self) -> int:
        """How many completed runs the cell averages."""
        return 0 if self.runs is None else len(self.runs)

    @functools.cached_property
    def row(self) -> Mapping[str, Any] | None:
        """The latest completed row: what is not averaged (how memory was measured) comes from it."""
        return self.runs.iloc[-1].to_dict() if self.count else None  # type: ignore[union-attr]

    def value(self, column: str, scale: float = 1.0) -> float | None:
        """The mean of the rows' ``column`` times ``scale``; None without a completed run or a number."""
        numbers = self._numbers(column, scale)
        return statistics.fmean(numbers) if numbers else None

    def spread(self, column: str, scale: float = 1.0) -> float | None:
        """The sample standard deviation of ``column`` over the repeats; None with fewer than two numbers."""
        numbers = self._numbers(column, scale)
        return statistics.stdev(numbers) if len(numbers) > 1 else None

    def _numbers(self, column: str, scale: float) -> list[float]:
        if self.runs is None or column not in self.runs.columns:
            return []
        return [
            number for value in self.runs[column].tolist() if (number := as_float(value, scale)) is not None
        ]


def merge_criteria(base: Mapping[str, object], where: Mapping[str, object] | None) -> dict[str, object]:
    """A table's selection: ``base`` with ``where``'s keys overriding it, a ``None`` value dropping one."""
    merged = {**base, **(where or {})}
    return {key: merged[key] for key in sorted(merged) if merged[key] is not None}


def describe_criteria(criteria: Mapping[str, object]) -> str:
    """The selection as an error message says it: ``key=value, ...`` or "all rows"."""
    return ", ".join(f"{key}={value}" for key, value in criteria.items()) or "all rows"


def require_columns(frame: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    """Raise ``TableError`` naming the ``columns`` the frame lacks, rather than a pandas ``KeyError``."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise TableError(f"{table}: the frame has no column {', '.join(map(repr, missing))}")


def select_rows(
    frame: object, criteria: Mapping[str, object], table: str, value_columns: Sequence[str]
) -> pd.DataFrame:
    """The rows matching ``criteria``, checked for what every cell of the table relies on.

    Every row needs a known status; when some are completed, the frame must have the ``value_columns``
    the cells read, and the completed rows must agree on model size and datasets (``SCALE_COLUMNS``).
    """
    if not isinstance(frame, pd.DataFrame):
        raise TableError(f"{table}: expected a pandas DataFrame, got {type(frame).__name__}")
    require_columns(frame, [*criteria, "status"], table)
    mask = np.ones(len(frame), dtype=bool)
    for column, value in criteria.items():
        mask &= _matches(frame[column], value)
    selected = frame[mask]
    if selected["status"].isna().any():
        raise TableError(f"{table}: {int(selected['status'].isna().sum())} rows have no status")
    unknown = sorted(set(selected["status"]) - {COMPLETED, *PENDING_STATES})
    if unknown:
        expected = ", ".join((COMPLETED, *PENDING_STATES))
        raise TableError(f"{table}: unknown status {', '.join(map(repr, unknown))} (expected {expected})")
    completed = selected[selected["status"] == COMPLETED]
    if len(completed):
        require_columns(frame, value_columns, table)
        check_agree(completed, SCALE_COLUMNS, table)
    return selected


def _matches(column: pd.Series, value: object) -> np.ndarray:
    if isinstance(value, float):
        return np.isclose(
            pd.to_numeric(column, errors="coerce").to_numpy(dtype=float), value, rtol=0, atol=1e-9
        )
    return (column == value).fillna(False).to_numpy(dtype=bool)


def check_agree(rows: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Completed rows shown as one cell or table must not differ in ``columns``: that would mix runs."""
    differing = [c for c in columns if c in rows.columns and rows[c].nunique(dropna=False) > 1]
    if differing:
        detail = "; ".join(f"{c} {', '.join(sorted(map(str, rows[c].unique())))}" for c in differing)
        raise TableError(
            f"{what} mixes completed runs that differ in {detail}: "
            "pass where={column: value} or filter the frame first"
        )


def axis_key(value: object) -> object:
    """Axis values as dictionary keys: numbers rounded so that 0.5 from JSON and from CSV meet."""
    return round(float(value), 9) if isinstance(value, (int, float, np.number)) else value


def group_cells(rows: pd.DataFrame, keys: Sequence[str]) -> dict[tuple[object, ...], pd.DataFrame]:
    """Rows grouped by the table's axis columns, keyed by their ``axis_key`` values."""
    return {tuple(map(axis_key, key)): group for key, group in rows.groupby(list(keys), sort=True)}


def present_values(rows: pd.DataFrame, column: str, wanted: Sequence[_N]) -> list[_N]:
    """The wanted axis values that some row has, in the caller's order."""
    have = {axis_key(v) for v in rows[column].dropna().unique()}
    return [value for value in wanted if axis_key(value) in have]


def training_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows that can carry training cost: training runs (and status rows that do not say)."""
    if "stage" not in rows.columns:
        return rows
    return rows[(rows["stage"] == "train").fillna(False) | rows["stage"].isna()]


def evaluation_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows for AP cells: all but completed trainings that did not evaluate themselves.

    A sweep's trainings leave evaluation to their evaluation runs; completed, they would shadow those
    with empty cells. Trainings not completed stay: their state (failed, queued...) is the cell's news.
    """
    if "stage" not in rows.columns:
        return rows
    evaluated = rows["bbox_AP"].notna() if "bbox_AP" in rows.columns else False
    silent_training = (rows["stage"] == "train") & (rows["status"] == COMPLETED) & ~evaluated
    return rows[~silent_training]


def pick_run(
    rows: pd.DataFrame | None,
    what: str,
    agree: Sequence[str] = VARIANT_COLUMNS,
    ignored: tuple[str, ...] = ignored_keys("eval"),
) -> Pick:
    """The runs shown in a cell; completed rows must agree on the ``agree`` columns and on every override
    but the seeds (``REPEAT_KEYS``) and the ``ignored`` keys."""
    if rows is None or rows.empty:
        return Pick(MISSING)
    rows = rows if rows.index.is_unique else rows.reset_index(drop=True)  # positions found by label below
    completed = rows[rows["status"] == COMPLETED]
    if completed.empty:
        states = set(rows["status"])
        return Pick(next(s for s in PENDING_STATES if s in states))
    check_agree(completed, agree, what)
    order = [c for c in ("created_at", "run_id") if c in completed.columns]
    ordered = completed.sort_values(order, kind="stable") if order else completed
    if len(rows) == 1:  # one run, nothing to compare: no overrides parsed
        return Pick(COMPLETED, ordered)
    by_row = _settings(rows, agree, ignored, what)
    settings = [by_row[position] for position in rows.index.get_indexer(ordered.index)]
    _check_one_setting([setting for _, setting in settings], what)
    latest: dict[str, int] = {}
    for position, (seed, _) in enumerate(settings):
        latest.pop(seed, None)  # a seed run again: its latest run counts, and moves to the end
        latest[seed] = position
    seeds = {seed for seed, _ in by_row}
    return Pick(COMPLETED, ordered.iloc[list(latest.values())], len(seeds))


Setting = dict[str, tuple[str, str]]  # override key -> (its value as canonical JSON, as written)


def _settings(
    rows: pd.DataFrame, agree: Sequence[str], ignored: tuple[str, ...], what: str
) -> list[tuple[str, Setting]]:
    """Each row's seeds (as one key) and the overrides that can change its result, but those its
    ``agree`` columns show."""
    texts = rows["overrides"] if "overrides" in rows.columns else pd.Series([""] * len(rows))
    run_ids = rows["run_id"] if "run_id" in rows.columns else pd.Series([None] * len(rows))
    settings = []
    for text, run_id in zip(texts.tolist(), run_ids.tolist(), strict=True):
        try:
            pairs = _parsed_overrides(text if isinstance(text, str) else "")
        except OverrideError as err:
            raise TableError(f"{what}: run {run_id}: {err}") from None
        seeds = dict.fromkeys(REPEAT_KEYS, UNSET)
        setting: Setting = {}
        for key, value, written in pairs:
            if key in seeds:
                seeds[key] = value
            elif _compared(key, tuple(agree), ignored):
                setting[key] = (value, written)
        settings.append((" ".join(seeds.values()), setting))
    return settings


@functools.lru_cache(maxsize=4096)
def _compared(key: str, agree: tuple[str, ...], ignored: tuple[str, ...]) -> bool:
    """Whether runs of a cell must agree on ``key``: not when it cannot change a result, nor when a
    variant column they agree on already shows it."""
    shown = key.startswith(VARIANT_PREFIX) and key.rpartition(".")[2] in agree
    return not shown and not is_ignored(key, ignored)


def _parsed_overrides(text: str) -> tuple[tuple[str, str, str], ...]:
    """(key, value as canonical JSON, value as written) of each override of a row's ``overrides``: the
    ``key=value`` strings joined by spaces, so a value with a space (``'a b'``) spans words."""
    pairs = []
    pending = ""
    for word in text.split(" "):
        pending = f"{pending} {word}" if pending else word
        parsed = _parsed_override(pending)
        if parsed is not None:
            pairs.append(parsed)
            pending = ""
    if pending:
        parse_override(pending)  # raises: the last override is unfinished
    return tuple(pairs)


@functools.lru_cache(maxsize=65536)
def _parsed_override(text: str) -> tuple[str, str, str] | None:
    """One ``key=value`` as ``_parsed_overrides`` gives it, None if it is unfinished; cached, as the runs of
    a sweep repeat a few dozen overrides (10,000 rows parsed each time took seconds)."""
    try:
        key, value = parse_override(text)
    except OverrideError:
        return None
    return key, json.dumps(value, sort_keys=True), text.partition("=")[2]


def _check_one_setting(settings: Sequence[Setting], what: str) -> None:
    """Completed rows of a cell that differ in more than the seed would be averaged as if repeats."""
    keys = sorted({key for setting in settings for key in setting})
    differing = {
        key: sorted({setting.get(key, (UNSET, UNSET))[1] for setting in settings})
        for key in keys
        if len({setting.get(key, (UNSET, UNSET))[0] for setting in settings}) > 1
    }
    if differing:
        detail = "; ".join(f"{key} {', '.join(values)}" for key, values in differing.items())
        raise TableError(
            f"{what} mixes completed runs that differ in {detail}, which the table has no axis for "
            f"(it averages only repeats over {' and '.join(REPEAT_KEYS)}): keep one value in the spec or "
            "filter the frame first"
        )


def pick_training(rows: pd.DataFrame | None, what: str) -> Pick:
    """A training run for cost cells: its evaluation ratio and settings do not matter."""
    return pick_run(rows, what, TRAINING_COLUMNS, ignored_keys("train"))


@functools.cache
def paper_cells(table: str, csv: str) -> dict[tuple[object, ...], dict[str, object]]:
    """The rows of the paper's ``csv`` by the cell of ``table`` they name: their axis values as
    ``axis_key``s, in the order of the table's axes (those the CSV has). Cached: the CSVs do not change.
    """
    definition = PAPER_TABLES[table]
    cells = {}
    for row in load_paper_csv(csv).to_dict("records"):
        cell = definition.cell(row)
        cells[tuple(axis_key(cell[axis]) for axis in definition.axes if axis in cell)] = row
    return cells
