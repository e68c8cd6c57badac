"""A sweep's results as one DataFrame: a row per record, and a status row for each run without one.

Status rows carry the run's variant (read from its config and overrides) so the tables can show
"queued" or "failed" in the right cell instead of a blank.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mimdet.paper.tables import PAPER_TABLES
from mimdet.record.atomic import write_bytes_atomic

from .config_cache import variant_columns
from .expand import SweepPlan
from .record_rows import rows_of
from .runs import RunState
from .state import RunStatus
from .store import Store


def results_frame(plan: SweepPlan, store: Store, statuses: dict[str, RunStatus]) -> pd.DataFrame:
    """One row per run of the plan, in plan order."""
    rows = []
    for run in plan.runs:
        status = statuses.get(run.run_id)
        kept = status.row if status is not None else rows_of(store.root).load(run.run_id)[0]
        if kept is not None:
            row = dict(kept)  # shared with the row cache
        else:
            status = status or RunStatus(run, RunState.NEW)
            row = {
                "run_id": run.run_id,
                "stage": run.stage,
                "parent_run_id": run.parent,
                "status": status.state.value,
                "error": status.detail,
                "config_file": run.config_file,
                "overrides": " ".join(run.overrides),
                **variant_columns(run.config_file, run.overrides),
            }
        row.update({f"cell_{key}": value for key, value in run.cell.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def write_results(frame: pd.DataFrame, path: Path) -> None:
    """Parquet or CSV by the file's suffix, serialized in memory and written atomically (a failed write
    leaves the previous file and no temporary one)."""
    suffix = path.suffix.lower()  # results.CSV is a CSV file too
    if suffix not in (".parquet", ".csv"):
        raise ValueError(f"{path}: write results as .parquet or .csv")
    data = frame.to_parquet(index=False) if suffix == ".parquet" else frame.to_csv(index=False).encode()
    write_bytes_atomic(path, data)


def table_layout(table: str | None, plan: SweepPlan) -> dict[str, Any]:
    """The rows/columns a table shows: the values the sweep varies (a tiny sweep, a small table)."""

    def values(key: str) -> tuple[Any, ...]:
        return tuple(sorted({run.cell[key] for run in plan.runs if key in run.cell}))

    options = PAPER_TABLES[table].layout if table else {}
    layout = {option: values(axis) for option, axis in options.items()}
    return {key: value for key, value in layout.items() if value}
