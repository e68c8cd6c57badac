"""What ``sweep`` shows: the tables of runs and their states, in colour on a terminal.

The commands in ``cli.main`` compute; this module only lays out what they found. A table of more than
``RICH_ROWS`` runs is printed as plain aligned text, since rich spends about a millisecond on a row.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from sweeps.expand import SweepPlan
    from sweeps.store import Store

# user text (a row label, a spec path, a store root) is printed as it is: never read as rich markup (a
# "[/bold]" would be a MarkupError, "[red]x" a style) or as emoji codes (":x:"); colour is set by Text styles
console = Console(
    highlight=False, markup=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150
)
STATE_STYLE = {
    "new": "dim",
    "queued": "cyan",
    "running": "yellow",
    "completed": "green",
    "failed": "red",
    "interrupted": "bright_red",
    "cancelled": "magenta",
}
RICH_ROWS = 200


def cell_text(cell: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell.items())


def runs_table(title: str, columns: Sequence[str], rows: list[list[str]], state: int) -> RenderableType:
    """A rich table with each run's state (column ``state``) in its colour, or, for more than
    ``RICH_ROWS`` runs, the same columns as plain aligned text (10,000 runs in a fraction of a second)."""
    if len(rows) <= RICH_ROWS:
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*row[:state], Text(row[state], style=STATE_STYLE[row[state]]), *row[state + 1 :])
        return table
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)]
    lines = [
        title,
        *(
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            for row in [list(columns), ["-" * w for w in widths], *rows]
        ),
    ]
    return Text("\n".join(lines), no_wrap=True, overflow="ignore")


def status_view(spec: str | Path, plan: SweepPlan, store: Store) -> Group:
    """The table of every run's state, and below it what ``sweep run`` would do about them."""
    from sweeps.engine import statuses

    found = statuses(store, plan.runs)
    counts = Counter(status.state.value for status in found.values())
    title = f"{spec}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    hints = {
        "new": f"sweep run {spec} starts new runs",
        "interrupted": f"sweep run {spec} resumes interrupted runs",
        "failed": f"sweep run {spec} --retry-failed starts failed ones again",
    }
    rows = []
    for run in plan.runs:
        status = found[run.run_id]
        box = status.row["bbox_AP"] if status.row else None
        mask = status.row["segm_AP"] if status.row else None
        rows.append(
            [
                run.run_id,
                run.stage,
                cell_text(run.cell),
                status.state.value,
                "" if box is None else f"{box:.1f}",
                "" if mask is None else f"{mask:.1f}",
                status.detail[:80],
            ]
        )
    columns = ("run", "stage", "cell", "state", "box AP", "mask AP", "detail")
    next_steps = [Text(hint, style="bold") for state, hint in hints.items() if counts[state]]
    return Group(runs_table(title, columns, rows, state=3), *next_steps)
