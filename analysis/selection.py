"""Which run fills a cell of a paper table: the rules ``analysis.tables`` and ``analysis.plots`` share.

A table and its figure must never disagree, so both select, group and pick runs with these functions:

- ``select_rows`` keeps the rows of one table's fixed setting (``merge_criteria``: the table's base
  selection, overridden by the caller's ``where``), checked for what every cell relies on;
- ``group_cells`` groups them by the table's axis columns, ``training_rows`` / ``evaluation_rows`` keep
  those that can carry training cost resp. AP;
- ``pick_run`` / ``pick_training`` choose a cell's run: a completed row wins (the latest by
  ``created_at``, then ``run_id``), otherwise the most advanced state, otherwise ``missing``.

Input the rules cannot serve raises ``TableError``, one sentence naming the table and the problem.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from mimdet.paper.published import load_paper_csv
from mimdet.paper.tables import PAPER_TABLES
from mimdet.record.schema import Variant

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


@dataclass(frozen=True)
class Pick:
    """A cell's run: its state, and its row when completed."""

    state: str
    row: Mapping[str, Any] | None = None

    def value(self, column: str, scale: float = 1.0) -> float | None:
        """The row's ``column`` times ``scale``; None without a completed run or a number there."""
        return None if self.row is None else as_float(self.row.get(column), scale)


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


def pick_run(rows: pd.DataFrame | None, what: str, agree: Sequence[str] = VARIANT_COLUMNS) -> Pick:
    """The run shown in a cell; completed rows must agree on the ``agree`` columns."""
    if rows is None or rows.empty:
        return Pick(MISSING)
    completed = rows[rows["status"] == COMPLETED]
    if completed.empty:
        states = set(rows["status"])
        return Pick(next(s for s in PENDING_STATES if s in states))
    check_agree(completed, agree, what)
    order = [c for c in ("created_at", "run_id") if c in completed.columns]
    latest = completed.sort_values(order, kind="stable") if order else completed
    return Pick(COMPLETED, latest.iloc[-1].to_dict())


def pick_training(rows: pd.DataFrame | None, what: str) -> Pick:
    """A training run for cost cells: its evaluation ratio does not matter."""
    return pick_run(rows, what, TRAINING_COLUMNS)


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
