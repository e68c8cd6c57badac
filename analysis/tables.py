"""The paper's Tables 1-4 in the paper's layout, from run rows, as Markdown or LaTeX (booktabs).

Input: a DataFrame with one row per record (``analysis.records.load_records``; columns are those of
``mimdet.record.schema.record_to_row``), optionally with rows for runs that have no record yet: such a row
carries its run's variant columns and a ``status`` of ``queued``, ``running``, ``new``, ``interrupted``,
``failed`` or ``cancelled``.

How cells are filled (the rules live in ``analysis.selection``, shared with ``analysis.plots``):

- Each table first selects the MIMDet runs of the paper's fixed setting (e.g. Table 2: 4 decoders,
  random sampling, hybrid FPN: its ``selection`` in ``mimdet.paper.tables.PAPER_TABLES``, which also
  gives its axes and paper rows); ``where={...}`` overrides keys of that selection, ``None`` drops one.
- In a cell, completed rows win. Completed rows of one cell must agree on every variant column, and
  those of one table on model size and datasets; otherwise the table would silently mix different runs,
  so a ``TableError`` says which columns differ.
- Repeats: completed rows of a cell whose ``overrides`` differ only in ``train.seed`` or the backbone's
  ``eval_seed`` (``analysis.selection.REPEAT_KEYS``; left out: keys that
  cannot change a result, ``mimdet.run.overrides.OPERATIONAL_KEYS``, for a training's cost also the
  test-time ones, and backbone keys a variant column shows) are averaged, each quantity
  (cost too) shown as its mean with the count and sample standard deviation, ``42.0 / 36.5 (n=2, sd 1.4 /
  0.7)``, or ``(2 of 3 done, sd ...)`` while some seeds of the cell are not completed, so that a partial
  mean never looks final. Of one seed the latest run counts (by ``created_at``, then ``run_id``): a cell
  of one run reads as it always did. Rows that differ in any other override (``optimizer.lr``,
  ``train.eval_precise_bn_iters``) are a ``TableError`` naming the keys and their values: the table has
  no axis to show them on.
- Without a completed row a cell shows the most advanced state: running, queued, new, interrupted,
  failed, cancelled, in that order; without any row, ``missing``. Time and memory come from the training
  run (``stage``).
- Units: AP as recorded (COCO percent, one decimal); time in hours; memory in GiB ("G", as detectron2's
  ``max_mem`` and the paper), marked "CPU RSS" when measured as the CPU's resident set; parameters in M.
- ``with_paper=True`` writes ``measured (paper P, Δ D)``, Δ from the mean of repeats. Δ is given for AP
  and parameters only: time and memory depend on the hardware (the paper used 32 V100), so their
  difference is no finding.

Rendering is deterministic (explicit ordering, fixed float formats). LaTeX output is one ``tabular`` to
``\\input``; it needs ``\\usepackage{booktabs,amssymb}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from analysis.selection import (
    COMPLETED,
    SCALE_COLUMNS,
    Pick,
    TableError,
    as_float,
    axis_key,
    check_agree,
    describe_criteria,
    evaluation_rows,
    group_cells,
    merge_criteria,
    paper_cells,
    pick_run,
    pick_training,
    present_values,
    require_columns,
    select_rows,
    training_rows,
)
from mimdet.paper.published import load_paper_csv
from mimdet.paper.tables import PAPER_TABLES

Format = Literal["md", "latex"]

PAPER_RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)
PAPER_DECODERS = (1, 2, 4, 8)


# --- cell text ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Quantity:
    """A measured quantity: its row columns (joined by " / "), display scale, unit and precision."""

    columns: tuple[str, ...]
    scale: float = 1.0
    unit: str = ""
    decimals: int = 1
    paper_decimals: int = 1
    delta: bool = True
    note: tuple[str, str, str] | None = None  # (column, value, note): "(note)" after the value


AP_PAIR = _Quantity(("bbox_AP", "segm_AP"))
AP_BOX = _Quantity(("bbox_AP",))
AP_MASK = _Quantity(("segm_AP",))
PARAMS = _Quantity(("params_total",), scale=1e-6, unit=" M", paper_decimals=0)
TRAIN_TIME = _Quantity(("train_wall_time_s",), scale=1 / 3600, unit=" h", delta=False)
TRAIN_MEM = _Quantity(
    ("peak_mem_bytes_bs1",),
    scale=1 / 2**30,
    unit=" G",
    delta=False,
    note=("peak_mem_kind", "cpu_peak_rss_delta", "CPU RSS"),
)


def _measured(pick: Pick, quantity: _Quantity) -> tuple[float | None, ...] | None:
    """The quantity's values in display units; None when there is no completed run."""
    if pick.row is None:
        return None
    return tuple(pick.value(c, quantity.scale) for c in quantity.columns)


def format_number(value: object, decimals: int, unit: str) -> str:
    """A number as the tables write it (``−`` for minus; a word such as "oom" as is; "–" for none).

    Public so that the figures of ``analysis.plots`` label their cells exactly as the tables do.
    """
    number = as_float(value)
    if number is None:
        return value if isinstance(value, str) and value else "–"
    text = f"{number:.{decimals}f}"
    if float(text) == 0 and number != 0:  # a tiny run's 0.004 h is not 0.0 h
        text = f"{number:.2g}"
    return text.replace("-", "−") + unit


def _signed(value: float, decimals: int) -> str:
    text = f"{value:+.{decimals}f}"
    if float(text) == 0:
        text = "+" + text[1:]
    return text.replace("-", "−")


def _cell(
    pick: Pick,
    quantity: _Quantity,
    paper: Sequence[object] | None,
    with_paper: bool,
    *,
    base: Pick | None = None,
    paper_base: Sequence[object] | None = None,
) -> str:
    """Measured values (or the run's state), relative to ``base`` when given, then the paper's figure."""
    measured = _measured(pick, quantity)
    if measured is None:
        text = pick.state
    else:
        text = _values_text(measured, quantity.decimals, quantity.unit)
        ratio = _ratio(measured, _measured(base, quantity) if base else None)
        text = f"{ratio} ({text})" if ratio else text
        if quantity.note and pick.row and pick.row.get(quantity.note[0]) == quantity.note[1]:
            text += f" ({quantity.note[2]})"
        text += _repeats(pick, quantity)
    if not with_paper or paper is None:
        return text
    paper_values = tuple(map(as_float, paper))
    paper_text = _values_text(paper, quantity.paper_decimals, quantity.unit)
    ratio = _ratio(paper_values, None if paper_base is None else tuple(map(as_float, paper_base)))
    notes = [f"paper {ratio}, {paper_text}" if ratio else f"paper {paper_text}"]
    if quantity.delta and measured is not None:
        deltas = [
            None if m is None or p is None else m - p for m, p in zip(measured, paper_values, strict=True)
        ]
        if any(d is not None for d in deltas):
            notes.append(
                "Δ " + " / ".join("–" if d is None else _signed(d, quantity.decimals) for d in deltas)
            )
    return f"{text} ({', '.join(notes)})"


def _repeats(pick: Pick, quantity: _Quantity) -> str:
    """How many repeats a mean is over and how far apart they lie (sample sd), " (n=3, sd 1.4 / 1.2)",
    or " (2 of 3 done, sd ...)" while some are not completed; nothing for a cell of one run."""
    done = pick.count
    if done == pick.planned == 1:
        return ""
    notes = [f"n={done}" if done == pick.planned else f"{done} of {pick.planned} done"]
    if done > 1:
        spreads = (pick.spread(column, quantity.scale) for column in quantity.columns)
        notes.append("sd " + _values_text(tuple(spreads), quantity.decimals, ""))
    return f" ({', '.join(notes)})"


def _values_text(values: Sequence[object], decimals: int, unit: str) -> str:
    return " / ".join(format_number(v, decimals, unit) for v in values)


def _ratio(values: Sequence[float | None], base: Sequence[float | None] | None) -> str | None:
    """ "1.63×" as in Table 3's relative columns, when a single value and a nonzero base are known."""
    if base is None or len(values) != 1 or values[0] is None or not base[0]:
        return None
    return f"{values[0] / base[0]:.2f}×"


def _paper(row: Mapping[str, object] | None, *columns: str) -> tuple[object, ...] | None:
    return None if row is None else tuple(row[c] for c in columns)


def percent(ratio: float) -> str:
    """A sample ratio as the tables and figures label it: 0.125 -> "12.5%"."""
    return f"{round(ratio * 100, 2):g}%"


def _tick(flag: bool) -> str:
    return "✓" if flag else "✗"


# --- the grid: one layout, two formats ----------------------------------------------------------------


@dataclass(frozen=True)
class _Grid:
    """A table as text cells; a row given as a plain string is a section title across the table."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...] | str, ...]
    align: str  # "l" / "c" / "r" per column


_TEX = str.maketrans(
    {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
        "×": r"$\times$",
        "Δ": r"$\Delta$",
        "−": r"$-$",
        "–": "--",
        "✓": r"\checkmark{}",
        "✗": r"$\times$",
        "↓": r"$\downarrow$",
        "→": r"$\rightarrow$",
    }
)


def _render(grid: _Grid, fmt: Format) -> str:
    if fmt == "md":
        return _markdown(grid)
    return _latex(grid)


def _markdown(grid: _Grid) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join({"l": ":---", "c": ":---:", "r": "---:"}[a] for a in grid.align) + "|"
    lines = [line(grid.header), rule]
    for row in grid.rows:
        lines.append(line((f"*{row}*", *[""] * (len(grid.header) - 1)) if isinstance(row, str) else row))
    return "\n".join(lines) + "\n"


def _latex(grid: _Grid) -> str:
    def line(cells: Sequence[str]) -> str:
        return " & ".join(c.translate(_TEX) for c in cells) + r" \\"

    lines = [f"\\begin{{tabular}}{{{grid.align}}}", r"\toprule", line(grid.header), r"\midrule"]
    for i, row in enumerate(grid.rows):
        if isinstance(row, str):
            if i:
                lines.append(r"\midrule")
            lines.append(f"\\multicolumn{{{len(grid.header)}}}{{l}}{{\\emph{{{row.translate(_TEX)}}}}} \\\\")
        else:
            lines.append(line(row))
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _check_format(fmt: object) -> None:
    if fmt not in ("md", "latex"):
        raise TableError(f"unknown format {fmt!r}: expected 'md' or 'latex'")


# --- the four tables ----------------------------------------------------------------------------------


def render_table2(
    frame: pd.DataFrame,
    *,
    fmt: Format = "md",
    with_paper: bool = False,
    train_ratios: Sequence[float] = PAPER_RATIOS,
    infer_ratios: Sequence[float] = PAPER_RATIOS,
    where: Mapping[str, object] | None = None,
) -> str:
    """Table 2: AP box / mask per (training, inference) sample ratio, upper triangle, training cost.

    Only the requested ratios that some row has are shown, so a small sweep gives a small triangle.
    """
    _check_format(fmt)
    table = PAPER_TABLES["table2"]
    values = [*AP_PAIR.columns, *TRAIN_TIME.columns, *TRAIN_MEM.columns]
    criteria = merge_criteria(table.selection, where)
    rows = select_rows(frame, criteria, table.title, values)
    require_columns(rows, table.axes, table.title)
    trains = present_values(rows, "train_sample_ratio", train_ratios)
    infers = present_values(rows, "test_sample_ratio", infer_ratios)
    if not trains or not infers:
        raise TableError(
            f"Table 2: no runs at the requested ratios among those selected ({describe_criteria(criteria)})"
        )
    runs = group_cells(evaluation_rows(rows), table.axes)
    trainings = group_cells(training_rows(rows), ("train_sample_ratio",))
    paper_ap = paper_cells(table.name, "table2")
    paper_cost = paper_cells(table.name, "table2_cost")
    body = []
    for train in trains:
        cells = [percent(train)]
        for infer in infers:
            if infer < train:
                cells.append("")
                continue
            what = f"Table 2 cell (train {percent(train)}, inference {percent(infer)})"
            key = (axis_key(train), axis_key(infer))
            paper = _paper(paper_ap.get(key), "ap_box", "ap_mask")
            cells.append(_cell(pick_run(runs.get(key), what), AP_PAIR, paper, with_paper))
        training = pick_training(
            trainings.get((axis_key(train),)), f"Table 2 training run at {percent(train)}"
        )
        cost = paper_cost.get((axis_key(train),))
        cells.append(_cell(training, TRAIN_TIME, _paper(cost, "train_time_h"), with_paper))
        cells.append(_cell(training, TRAIN_MEM, _paper(cost, "train_mem_gb_bs1"), with_paper))
        body.append(tuple(cells))
    header = ("train ↓ / inference →", *map(percent, infers), "training time", "training mem (bs 1)")
    return _render(_Grid(header, tuple(body), "l" + "c" * (len(header) - 1)), fmt)


def compared_decoders(
    rows: pd.DataFrame, criteria: Mapping[str, object], decoders: Sequence[int] = PAPER_DECODERS
) -> list[int]:
    """The counts of ``decoders`` the selected runs have, in order; ``TableError`` for fewer than two, which
    Table 3 and its figure cannot compare (both say so in the same words)."""
    shown = present_values(rows, "num_decoders", decoders)
    if len(shown) < 2:
        have = ", ".join(sorted({str(axis_key(v)) for v in rows["num_decoders"].dropna()})) or "none"
        raise TableError(
            f"Table 3 compares numbers of decoders, but the selected runs ({describe_criteria(criteria)}) "
            f"have num_decoders {have} (wanted two or more of {', '.join(map(str, decoders))})"
        )
    return shown


def render_table3(
    frame: pd.DataFrame,
    *,
    fmt: Format = "md",
    with_paper: bool = False,
    decoders: Sequence[int] = PAPER_DECODERS,
    where: Mapping[str, object] | None = None,
) -> str:
    """Table 3: number of MAE decoders; parameters, memory and time also relative to the first row."""
    _check_format(fmt)
    table = PAPER_TABLES["table3"]
    values = [*AP_PAIR.columns, *PARAMS.columns, *TRAIN_TIME.columns, *TRAIN_MEM.columns]
    criteria = merge_criteria(table.selection, where)
    rows = select_rows(frame, criteria, table.title, values)
    require_columns(rows, table.axes, table.title)
    shown = compared_decoders(rows, criteria, decoders)
    runs = group_cells(evaluation_rows(rows), table.axes)
    trainings = group_cells(training_rows(rows), table.axes)
    paper = paper_cells(table.name, "table3")
    first = (axis_key(shown[0]),)
    base_run = pick_run(runs.get(first), f"Table 3 row {shown[0]}")
    base_training = pick_training(trainings.get(first), f"Table 3 training run {shown[0]}")
    paper_base = paper.get(first)

    def relative(pick: Pick, base: Pick, quantity: _Quantity, paper_row: Any, column: str) -> str:
        paper_values, paper_base_values = _paper(paper_row, column), _paper(paper_base, column)
        return _cell(pick, quantity, paper_values, with_paper, base=base, paper_base=paper_base_values)

    body = []
    for n in shown:
        run = pick_run(runs.get((axis_key(n),)), f"Table 3 row {n}")
        training = pick_training(trainings.get((axis_key(n),)), f"Table 3 training run {n}")
        p = paper.get((axis_key(n),))
        body.append(
            (
                str(n),
                _cell(run, AP_BOX, _paper(p, "ap_box"), with_paper),
                _cell(run, AP_MASK, _paper(p, "ap_mask"), with_paper),
                relative(run, base_run, PARAMS, p, "params_m"),
                relative(training, base_training, TRAIN_MEM, p, "train_mem_gb_bs1"),
                relative(training, base_training, TRAIN_TIME, p, "train_time_h"),
            )
        )
    header = ("# decoders", "AP box", "AP mask", "# params", "training mem (bs 1)", "training time")
    return _render(_Grid(header, tuple(body), "c" * len(header)), fmt)


def render_table4(
    frame: pd.DataFrame,
    *,
    fmt: Format = "md",
    with_paper: bool = False,
    where: Mapping[str, object] | None = None,
) -> str:
    """Table 4: hybrid FPN (P2/P3 from the ConvStem) and random sampling vs 7x7 windows.

    A row is shown when some selected run has its (fpn_inputs, sampling, num_decoders, training ratio).
    """
    _check_format(fmt)
    table = PAPER_TABLES["table4"]
    values = [*AP_PAIR.columns, *PARAMS.columns, *TRAIN_TIME.columns]
    criteria = merge_criteria(table.selection, where)
    rows = select_rows(frame, criteria, table.title, values)
    require_columns(rows, table.axes, table.title)
    runs = group_cells(evaluation_rows(rows), table.axes)
    trainings = group_cells(training_rows(rows), table.axes)
    paper = paper_cells(table.name, "table4")
    body = []
    for label, (fpn_inputs, sampling, num_decoders, train_ratio) in table.labelled_rows.items():
        key = (fpn_inputs, sampling, axis_key(num_decoders), axis_key(train_ratio))
        if key not in runs:
            continue
        run = pick_run(runs[key], f"Table 4 {label}")
        training = pick_training(trainings.get(key), f"Table 4 {label} training run")
        p = paper.get(key)
        body.append(
            (
                label,
                _tick(fpn_inputs == "hybrid"),
                _tick(sampling == "random"),
                str(num_decoders),
                _cell(run, AP_BOX, _paper(p, "ap_box"), with_paper),
                _cell(run, AP_MASK, _paper(p, "ap_mask"), with_paper),
                _cell(run, PARAMS, _paper(p, "params_m"), with_paper),
                _cell(training, TRAIN_TIME, _paper(p, "train_time_h"), with_paper),
            )
        )
    if not body:
        raise TableError(
            f"Table 4: none of the selected runs ({describe_criteria(criteria)}) matches one of its rows"
        )
    header = ("", "hybrid FPN?", "rand. sample?", "# decoders", "AP box", "AP mask", "# params", "time")
    return _render(_Grid(header, tuple(body), "l" + "c" * (len(header) - 1)), fmt)


# Table 1's paper rows by role (the ``backbone`` column of table1.csv); a measured row's selection is
# None for the table's own (the paper's default MIMDet), which ``where`` overrides
TABLE1_REFERENCES = ("Swin+", "MViTv2")
TABLE1_MEASURED: tuple[tuple[str, str, Mapping[str, object] | None], ...] = (
    (
        "Benchmarking ViT (Li et al.), ours",
        "Li et al. (ViTDet-style benchmarking)",
        {"model": "benchmarking"},
    ),
    ("MIMDet, ours", "MIMDet", None),
)


def render_table1(
    frame: pd.DataFrame,
    *,
    fmt: Format = "md",
    with_paper: bool = False,
    where: Mapping[str, object] | None = None,
) -> str:
    """Table 1: MIMDet and the Benchmarking baseline as measured, Swin+ and MViTv2 as the paper's rows.

    The recipe columns (pre-train, epochs, augmentation, rel pos) describe the method as in the paper;
    ``where`` overrides the MIMDet row's selection only.
    """
    _check_format(fmt)
    table = PAPER_TABLES["table1"]
    paper = {row["backbone"]: row for row in load_paper_csv("table1").to_dict("records")}
    body: list[tuple[str, ...] | str] = ["representative hierarchical architecture (paper)"]
    for name in TABLE1_REFERENCES:
        p = paper[name]
        body.append(
            (name, *_recipe(p), format_number(p["ap_box"], 1, ""), format_number(p["ap_mask"], 1, ""))
        )
    body.append("adapted vanilla Vision Transformer")
    completed, found = [], False
    for label, paper_name, selection in TABLE1_MEASURED:
        if selection is None:
            criteria = merge_criteria(table.selection, where)
        else:
            criteria = merge_criteria(selection, None)
        rows = select_rows(frame, criteria, "Table 1", AP_PAIR.columns)
        found |= not rows.empty
        completed.append(rows[rows["status"] == COMPLETED])
        pick = pick_run(rows, f"Table 1 row {label!r}")
        p = paper[paper_name]
        ap_box = _cell(pick, AP_BOX, _paper(p, "ap_box"), with_paper)
        body.append((label, *_recipe(p), ap_box, _cell(pick, AP_MASK, _paper(p, "ap_mask"), with_paper)))
    if not found:
        raise TableError("Table 1: the frame has no MIMDet and no Benchmarking runs")
    check_agree(pd.concat(completed), SCALE_COLUMNS, "Table 1")
    header = ("backbone", "pre-train", "fine-tune epochs", "data aug", "rel pos?", "AP box", "AP mask")
    return _render(_Grid(header, tuple(body), "lcccccc"), fmt)


def _recipe(paper_row: Mapping[str, object]) -> tuple[str, ...]:
    """Table 1's descriptive columns of a method, as the paper prints them."""
    epochs, rel_pos = paper_row["finetune_epochs"], paper_row["rel_pos"]
    return (str(paper_row["pretrain"]), str(epochs), str(paper_row["data_aug"]), _tick(bool(rel_pos)))


TABLES: dict[str, Callable[..., str]] = {
    "table1": render_table1,
    "table2": render_table2,
    "table3": render_table3,
    "table4": render_table4,
}


def render_table(
    name: str, frame: pd.DataFrame, *, fmt: Format = "md", with_paper: bool = False, **layout: Any
) -> str:
    """Render paper table ``name`` ("table1" .. "table4"); ``layout`` goes to its ``render_tableN``.

    Layout options: ``where`` (all tables: overrides the selection of MIMDet runs, see the module
    docstring), ``train_ratios`` / ``infer_ratios`` (table2), ``decoders`` (table3).
    """
    if name not in TABLES:
        raise TableError(f"unknown table {name!r}: expected one of {', '.join(TABLES)}")
    render = TABLES[name]
    try:
        inspect.signature(render).bind(frame, fmt=fmt, with_paper=with_paper, **layout)
    except TypeError:
        options = [p for p in inspect.signature(render).parameters if p not in ("frame", "fmt", "with_paper")]
        unknown = ", ".join(map(repr, sorted(set(layout) - set(options))))
        raise TableError(f"{name}: unknown layout option {unknown} (it takes {', '.join(options)})") from None
    return render(frame, fmt=fmt, with_paper=with_paper, **layout)
