"""The paper's ablations as figures: Table 2 as heatmaps, accuracy against training cost, Table 3's decoders
and Fig. 2's feature maps.

Each function takes what it draws (a results DataFrame as ``analysis.records.load_records`` gives it, or
feature maps) and returns a ``matplotlib.figure.Figure`` built without pyplot, so nothing global changes
and the figure can be tested, shown in a notebook or saved; ``write_plots`` saves the figures of a table.

Cells are chosen by ``analysis.selection``, as ``analysis.tables`` chooses them (same selection, ``where``,
states and precedence), so a figure never disagrees with its table, and a cell without a completed run
shows its state. Measured and published numbers usually differ in scale (a CPU run on synthetic shapes
against ViT-B on COCO on 32 V100), so the paper's series get axes of their own, grey and labelled "paper",
and dashed lines.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.transforms import blended_transform_factory

from analysis.selection import (
    COMPLETED,
    Pick,
    TableError,
    as_float,
    axis_key,
    describe_criteria,
    evaluation_rows,
    group_cells,
    merge_criteria,
    paper_cells,
    pick_run,
    pick_training,
    require_columns,
    select_rows,
    training_rows,
)
from analysis.tables import AP_PAIR, PARAMS, TRAIN_MEM, TRAIN_TIME, compared_decoders, format_number, percent
from mimdet.paper.published import load_paper_csv
from mimdet.paper.tables import PAPER_TABLES, PaperTable
from mimdet.record.atomic import write_bytes_atomic

if TYPE_CHECKING:  # annotations only: drawing tables needs neither torch nor detectron2
    import torch

    from mimdet.run.features import FeatureMaps

_P = ParamSpec("_P")
_R = TypeVar("_R")

BOX, MASK = "tab:blue", "tab:orange"
PAPER_COLOUR = "0.4"  # the paper's axes, labels and notes
# states shown in red; the others dark grey
STATE_COLOURS = {"failed": "tab:red", "interrupted": "tab:red", "cancelled": "tab:red"}
CPU_RSS = "cpu_peak_rss_delta"
DPI = 150


class PlotError(ValueError):
    """Data a figure cannot be drawn from, said in one line."""


def _plot_errors(plot: Callable[_P, _R]) -> Callable[_P, _R]:
    """The tables' selection errors (same input, same problem) raised as ``PlotError``."""

    @functools.wraps(plot)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return plot(*args, **kwargs)
        except TableError as err:
            raise PlotError(str(err)) from None

    return wrapper


# --- selection: the tables' rules ----------------------------------------------------------------------


def _rows(
    frame: object, table: PaperTable, where: Mapping[str, object] | None, values: Sequence[str]
) -> pd.DataFrame:
    """The runs a figure draws: the table's selection, not empty, with the columns the figure reads."""
    criteria = merge_criteria(table.selection, where)
    rows = select_rows(frame, criteria, table.title, values)
    require_columns(rows, table.axes, table.title)
    if rows.empty:
        raise PlotError(f"{table.title}: no runs match the selection ({describe_criteria(criteria)})")
    return rows


def _axis(rows: pd.DataFrame, column: str) -> list[float]:
    """The values an axis column takes, ascending."""
    return sorted({float(v) for v in pd.to_numeric(rows[column], errors="coerce").dropna().round(9)})


def _measured_on(rows: pd.DataFrame) -> str:
    """ "measured on <test set>" (the tables have checked that the completed runs agree on it)."""
    completed = rows[rows["status"] == COMPLETED]
    if "dataset_test" not in completed.columns or completed["dataset_test"].isna().all():
        return "measured"
    return f"measured on {completed['dataset_test'].dropna().iloc[0]}"


def _hardware(rows: pd.DataFrame) -> str:
    """Where the completed trainings ran ("1× NVIDIA H100", "CPU"): costs compare only like for like."""
    completed = training_rows(rows[rows["status"] == COMPLETED])
    kinds = set()
    for row in completed.to_dict("records"):
        if row.get("device") == "cuda":
            count = as_float(row.get("gpu_count")) or 1  # a float where status rows made the column NaN
            kinds.add(f"{count:g}× {row.get('gpu_model') or 'GPU'}")
        elif row.get("device") == "cpu":
            kinds.add("CPU")
    return " / ".join(sorted(kinds)) or "unrecorded hardware"


def _memory_unit(trainings: Sequence[Pick]) -> str:
    """GiB, and what was measured: CUDA's peak allocation or (``*`` where mixed) the CPU's RSS growth."""
    kinds = {
        p.row.get("peak_mem_kind")
        for p in trainings
        if p.row is not None and p.value("peak_mem_bytes_bs1") is not None
    }
    if not kinds:
        return "GiB"
    if kinds == {CPU_RSS}:
        return "GiB, CPU RSS increase"
    if CPU_RSS in kinds:
        return "GiB; * = CPU RSS increase"
    return "GiB, CUDA peak allocated"


# --- Table 2 as heatmaps -------------------------------------------------------------------------------

_TABLE2 = PAPER_TABLES["table2"]
_Cell = tuple[tuple[float | None, float | None], tuple[str, str]]  # (box, mask) values and texts


@_plot_errors
def plot_table2_heatmaps(
    frame: pd.DataFrame, *, with_paper: bool = True, where: Mapping[str, object] | None = None
) -> Figure:
    """Table 2's triangle as two heatmaps (AP box, AP mask); the paper's below when ``with_paper``.

    Each heatmap has its own colour scale: measured and published AP are rarely on one scale. ``where``
    changes the selection as in ``analysis.tables``.
    """
    rows = _rows(frame, _TABLE2, where, AP_PAIR.columns)
    trains, infers = _axis(rows, "train_sample_ratio"), _axis(rows, "test_sample_ratio")
    runs = group_cells(evaluation_rows(rows), _TABLE2.axes)
    measured: dict[tuple[float, float], _Cell] = {}
    for train in trains:
        for infer in (i for i in infers if i >= train):
            what = f"Table 2 cell (train {percent(train)}, inference {percent(infer)})"
            measured[(train, infer)] = _measured_cell(
                pick_run(runs.get((axis_key(train), axis_key(infer))), what)
            )
    grids = [(_measured_on(rows), measured)]
    if with_paper:
        paper = paper_cells(_TABLE2.name, "table2")
        grids.append(
            ("paper (ViT-B, COCO val2017)", {cell: _paper_cell(paper.get(cell)) for cell in measured})
        )
    fig = Figure(figsize=(12, 4.8 * len(grids) + 0.4), layout="constrained")
    axes = fig.subplots(len(grids), 2, squeeze=False)
    for r, (source, cells) in enumerate(grids):
        for c, task in enumerate(("AP box", "AP mask")):
            ax = axes[r, c]
            _heatmap(
                ax, {cell: (v[c], t[c]) for cell, (v, t) in cells.items()}, trains, infers, f"{task} (%)"
            )
            ax.set_title(f"{task}: {source}", fontsize=12, color="black" if r == 0 else PAPER_COLOUR)
    fig.suptitle(
        "Table 2: AP by the share of patches the ViT sees in training (rows) and in inference (columns)",
        fontsize=13,
    )
    fig.supxlabel(
        "grey: not run (inference ratio below the training ratio, as in the paper); "
        "italics: the state of a run without a result",
        fontsize=10,
        color="0.3",
    )
    return fig


def _measured_cell(pick: Pick) -> _Cell:
    """A cell's values and texts; without a completed run both texts are the run's state."""
    values = (pick.value("bbox_AP"), pick.value("segm_AP"))
    if pick.row is None:
        return values, (pick.state, pick.state)
    return values, (format_number(values[0], 1, ""), format_number(values[1], 1, ""))


def _paper_cell(row: Mapping[str, object] | None) -> _Cell:
    if row is None:
        return (None, None), ("not in paper", "not in paper")
    values = (as_float(row["ap_box"]), as_float(row["ap_mask"]))
    return values, (format_number(values[0], 1, ""), format_number(values[1], 1, ""))


def _heatmap(
    ax: Axes,
    cells: Mapping[tuple[float, float], tuple[float | None, str]],
    trains: Sequence[float],
    infers: Sequence[float],
    unit: str,
) -> None:
    """One triangle: values on their colour, states in italics on white, the lower triangle grey."""
    grid = np.full((len(trains), len(infers)), np.nan)
    for (train, infer), (value, _) in cells.items():
        grid[trains.index(train), infers.index(infer)] = np.nan if value is None else value
    finite = grid[np.isfinite(grid)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    norm = Normalize(low - 0.5, high + 0.5) if high - low < 1 else Normalize(low, high)
    cmap = colormaps["viridis"].with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm)
    size = 11 if len(infers) <= 5 else 8
    for r, train in enumerate(trains):
        for c, infer in enumerate(infers):
            if (train, infer) not in cells:
                ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor="0.88", edgecolor="none"))
                continue
            value, text = cells[(train, infer)]
            if value is None:
                colour, style = STATE_COLOURS.get(text, "0.3"), "italic"
            else:
                red, green, blue, _ = cmap(norm(value))
                colour = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                style = "normal"
            ax.text(c, r, text, ha="center", va="center", fontsize=size, color=colour, fontstyle=style)
    ax.set_xticks(range(len(infers)), [percent(i) for i in infers])
    ax.set_yticks(range(len(trains)), [percent(t) for t in trains])
    ax.set_xticks(np.arange(len(infers) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(trains) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=2)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("inference sample ratio (share of patches kept)")
    ax.set_ylabel("training sample ratio")
    ax.figure.colorbar(image, ax=ax, label=unit, shrink=0.85)


# --- accuracy against training cost --------------------------------------------------------------------


@dataclass(frozen=True)
class _CostPoint:
    """One training ratio that can be drawn: its evaluation (at ``infer``) and its training, completed."""

    train: float
    infer: float
    evaluation: Pick
    training: Pick

    def label(self, *, star: bool) -> str:
        """ "25%", "25% (inf. 75%)" when not evaluated at 100 %; ``star`` marks a CPU RSS memory figure."""
        text = percent(self.train) + ("" if self.infer == 1.0 else f" (inf. {percent(self.infer)})")
        cpu_rss = self.training.row is not None and self.training.row.get("peak_mem_kind") == CPU_RSS
        return text + ("*" if star and cpu_rss else "")


@_plot_errors
def plot_accuracy_vs_cost(frame: pd.DataFrame, *, where: Mapping[str, object] | None = None) -> Figure:
    """AP per training sample ratio against training time and memory: what a smaller ratio saves.

    AP is taken at inference ratio 100 % (the paper's deployed setting), else at the highest one evaluated.
    The paper's points (Table 2 at 100 % and its cost columns) are on grey top/right axes of their own.
    """
    values = [*AP_PAIR.columns, *TRAIN_TIME.columns, *TRAIN_MEM.columns]
    rows = _rows(frame, _TABLE2, where, values)
    points, skipped = _cost_points(rows)
    if not points:
        raise PlotError(
            f"Table 2: no training ratio has a completed training and evaluation: {', '.join(skipped)}"
        )
    fig = Figure(figsize=(13, 5.8), layout="constrained")
    time_ax, mem_ax = fig.subplots(1, 2)
    memory_unit = _memory_unit([p.training for p in points])
    panels = (
        (
            time_ax,
            TRAIN_TIME.columns[0],
            TRAIN_TIME.scale,
            f"training time (h, measured on {_hardware(rows)})",
        ),
        (mem_ax, TRAIN_MEM.columns[0], TRAIN_MEM.scale, f"training memory at batch size 1 ({memory_unit})"),
    )
    for ax, column, scale, xlabel in panels:
        shown = [(p, x) for p in points if (x := p.training.value(column, scale)) is not None]
        for task, colour, marker in (("bbox_AP", BOX, "o"), ("segm_AP", MASK, "s")):
            _series(ax, [(x, p.evaluation.value(task)) for p, x in shown], colour, marker)
        for p, x in shown:
            label = p.label(star=ax is mem_ax and "*" in memory_unit)
            box = p.evaluation.value("bbox_AP")
            ax.annotate(label, (x, box), xytext=(-5, 7), textcoords="offset points", ha="right", fontsize=9)
        ax.margins(0.12)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("AP (%), measured (solid)")
        ax.grid(alpha=0.3)
        _paper_cost_series(ax, "train_time_h" if ax is time_ax else "train_mem_gb_bs1")
    time_ax.set_title("AP vs. training time")
    mem_ax.set_title("AP vs. training memory (batch size 1)")
    paper = "paper (grey top/right axes: ViT-B on COCO, 32×V100 hours, V100 GB)"
    handles = [
        _handle(BOX, "o", "AP box, measured"),
        _handle(MASK, "s", "AP mask, measured"),
        _handle(BOX, "D", "AP box, paper", paper=True),
        _handle(MASK, "D", f"AP mask, {paper}", paper=True),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9)
    title = "Table 2: accuracy against training cost, one point per training sample ratio"
    fig.suptitle(title + ("\nnot shown: " + ", ".join(skipped) if skipped else ""), fontsize=12)
    return fig


def _cost_points(rows: pd.DataFrame) -> tuple[list[_CostPoint], list[str]]:
    """The training ratios that can be drawn, and "ratio (why not)" for those that cannot."""
    runs = group_cells(evaluation_rows(rows), _TABLE2.axes)
    trainings = group_cells(training_rows(rows), ("train_sample_ratio",))
    infers = _axis(rows, "test_sample_ratio")
    points, skipped = [], []
    for train in _axis(rows, "train_sample_ratio"):
        training = pick_training(
            trainings.get((axis_key(train),)), f"Table 2 training run at {percent(train)}"
        )
        evaluation = None
        for infer in sorted((i for i in infers if i >= train), reverse=True):
            what = f"Table 2 cell (train {percent(train)}, inference {percent(infer)})"
            pick = pick_run(runs.get((axis_key(train), axis_key(infer))), what)
            if pick.value("bbox_AP") is not None:
                evaluation = (infer, pick)
                break
        if training.row is None:
            skipped.append(f"{percent(train)} (training {training.state})")
        elif evaluation is None:
            skipped.append(f"{percent(train)} (no completed evaluation)")
        else:
            points.append(_CostPoint(train, evaluation[0], evaluation[1], training))
    return points, skipped


def _paper_cost_series(ax: Axes, column: str) -> None:
    """The paper's points at inference 100 %; a cost it gives as a word ("oom") is said in a note."""
    what, unit = ("time", "32×V100 wall-clock h") if column == "train_time_h" else ("memory", "GB on V100")
    twin = _paper_twin(ax, "AP (%), paper (dashed)", f"paper: training {what} ({unit})")
    ap = load_paper_csv("table2")
    paper = load_paper_csv("table2_cost").merge(ap[ap["infer_ratio"] == 1.0], on="train_ratio")
    shown, words = [], []
    for row in paper.sort_values("train_ratio").to_dict("records"):
        ratio, x = float(row["train_ratio"]), as_float(row[column])
        if x is None:
            words.append(f"{percent(ratio)} {what}: {row[column]}")
        else:
            shown.append((ratio, x, row))
    for task, colour in (("ap_box", BOX), ("ap_mask", MASK)):
        _series(twin, [(x, as_float(row[task])) for _, x, row in shown], colour, "D", paper=True)
    twin.margins(0.12)
    for ratio, x, row in shown:
        where = (x, as_float(row["ap_box"]))
        twin.annotate(
            percent(ratio),
            where,
            xytext=(5, -14),
            textcoords="offset points",
            fontsize=8,
            color=PAPER_COLOUR,
        )
    if words:
        note = "paper, not plotted: " + ", ".join(words)
        twin.text(0.98, 0.03, note, transform=twin.transAxes, ha="right", fontsize=8, color=PAPER_COLOUR)


def _paper_twin(ax: Axes, ylabel: str, xlabel: str | None = None) -> Axes:
    """Grey axes over ``ax`` for the paper's series: a right y axis, and a top x axis when ``xlabel``."""
    right = ax.twinx()
    right.set_ylabel(ylabel, color=PAPER_COLOUR)
    right.tick_params(colors=PAPER_COLOUR)
    if xlabel is None:
        return right
    top = right.twiny()
    top.set_xlabel(xlabel, color=PAPER_COLOUR)
    top.tick_params(colors=PAPER_COLOUR)
    return top


def _style(paper: bool) -> dict[str, Any]:
    """Measured: solid lines, filled markers; paper: dashed lines, hollow markers."""
    if paper:
        return dict(linestyle="--", markerfacecolor="white", linewidth=1, markersize=6)
    return dict(linewidth=1.5, markersize=7)


def _handle(colour: str, marker: str, label: str, *, paper: bool = False) -> Line2D:
    """A legend entry drawn as ``_series`` draws."""
    return Line2D([], [], color=colour, marker=marker, label=label, **_style(paper))


def _series(
    ax: Axes, points: Sequence[tuple[float, float | None]], colour: str, marker: str, *, paper: bool = False
) -> None:
    """A line through the points in x order; a missing value leaves a gap, not a zero."""
    ordered = sorted(points, key=lambda point: point[0])
    xs = np.array([x for x, _ in ordered], dtype=float)
    ys = np.array([np.nan if y is None else y for _, y in ordered], dtype=float)
    ax.plot(xs, ys, color=colour, marker=marker, **_style(paper))


# --- Table 3: number of decoders -----------------------------------------------------------------------

_TABLE3 = PAPER_TABLES["table3"]


@_plot_errors
def plot_decoders(frame: pd.DataFrame, *, where: Mapping[str, object] | None = None) -> Figure:
    """Table 3: AP, parameters and training memory against the number of MAE decoders.

    One panel per quantity (three units do not share an axis), the paper's Table 3 dashed on a grey right
    axis of each. A decoder count without a completed run shows its state at the foot of each panel.
    """
    values = [*AP_PAIR.columns, *PARAMS.columns, *TRAIN_MEM.columns]
    rows = _rows(frame, _TABLE3, where, values)
    counts = [int(n) for n in _axis(rows, "num_decoders")]
    decoders = compared_decoders(rows, merge_criteria(_TABLE3.selection, where), counts)  # two or more
    runs = group_cells(evaluation_rows(rows), ("num_decoders",))
    trainings = group_cells(training_rows(rows), ("num_decoders",))
    picks = {n: pick_run(runs.get((axis_key(n),)), f"Table 3 row {n}") for n in decoders}
    trained = {n: pick_training(trainings.get((axis_key(n),)), f"Table 3 training run {n}") for n in decoders}
    if not any(pick.count for pick in (*picks.values(), *trained.values())):  # a figure of the paper alone
        waiting = ", ".join(f"{n} (training {trained[n].state})" for n in decoders)
        raise PlotError(f"Table 3: no decoder count has a completed training or evaluation: {waiting}")
    paper = load_paper_csv("table3")
    params = [
        (n, picks[n].value("params_total", 1e-6) or trained[n].value("params_total", 1e-6)) for n in decoders
    ]
    memory = [(n, trained[n].value("peak_mem_bytes_bs1", 1 / 2**30)) for n in decoders]
    states = {
        n: pick.state if pick.row is None else "no AP"
        for n, pick in picks.items()
        if pick.value("bbox_AP") is None
    }
    fig = Figure(figsize=(15, 5.2), layout="constrained")
    ap_ax, params_ax, mem_ax = fig.subplots(1, 3)
    panels = (
        (
            ap_ax,
            "AP",
            "AP (%)",
            "AP (%)",
            [
                ([(n, picks[n].value("bbox_AP")) for n in decoders], "ap_box", BOX, "o"),
                ([(n, picks[n].value("segm_AP")) for n in decoders], "ap_mask", MASK, "s"),
            ],
        ),
        (params_ax, "parameters", "params (M)", "params (M)", [(params, "params_m", "tab:green", "o")]),
        (
            mem_ax,
            "training memory (batch size 1)",
            f"memory ({_memory_unit(list(trained.values()))})",
            "GB on V100",
            [
                (memory, "train_mem_gb_bs1", "tab:purple", "o"),
            ],
        ),
    )
    ticks = sorted({*decoders, *paper["num_decoders"].astype(int)})
    for ax, title, unit, paper_unit, series in panels:
        twin = _paper_twin(ax, f"{paper_unit}, paper (dashed)")
        for points, paper_column, colour, marker in series:
            _series(ax, points, colour, marker)
            _series(twin, _paper_points(paper, paper_column), colour, "D", paper=True)
        ax.set_title(title)
        ax.set_ylabel(f"{unit}, measured (solid)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(n) for n in ticks])
        ax.set_xlim(ticks[0] / 1.3, ticks[-1] * 1.3)
        ax.set_xlabel("number of MAE decoders")
        ax.grid(alpha=0.3)
        foot = blended_transform_factory(twin.transData, twin.transAxes)
        for n, state in states.items():
            colour = STATE_COLOURS.get(state, "0.3")
            twin.text(
                n, 0.04, state, transform=foot, ha="center", fontsize=10, fontstyle="italic", color=colour
            )
    handles = [
        _handle(BOX, "o", "AP box"),
        _handle(MASK, "s", "AP mask"),
        _handle("0.3", "o", "measured (left axes)"),
        _handle("0.3", "D", "paper's Table 3 (grey right axes)", paper=True),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=9)
    fig.suptitle(
        f"Table 3: the number of MAE decoders ({_measured_on(rows)}, trained on {_hardware(rows)}; "
        "paper: ViT-B on COCO, 32×V100)",
        fontsize=12,
    )
    return fig


def _paper_points(paper: pd.DataFrame, column: str) -> list[tuple[float, float | None]]:
    return [(float(n), as_float(v)) for n, v in zip(paper["num_decoders"], paper[column], strict=True)]


# --- Fig. 2: feature maps ------------------------------------------------------------------------------


def plot_feature_maps(items: Sequence[tuple[str, FeatureMaps]]) -> Figure:
    """Fig. 2: per model, the input, the stride-4 backbone map and FPN's P2 as channel mean and as PCA.

    Maps are drawn pixel for pixel (nearest neighbour) over the image's extent, so a transposed
    convolution's checkerboard stays visible; each map is normalised on its own (1st to 99th percentile):
    only patterns are compared, not magnitudes.
    """
    if not items:
        raise PlotError("Fig. 2: no models to show (expected a list of (name, FeatureMaps))")
    fig = Figure(figsize=(16, 3.5 * len(items) + 0.9), layout="constrained")
    axes = fig.subplots(len(items), 5, squeeze=False)
    for r, (name, maps) in enumerate(items):
        height, width = maps.image.shape[:2]
        extent = (0, width, height, 0)
        axes[r, 0].imshow(maps.image, extent=extent)
        axes[r, 0].set_title(f"input ({width}×{height})", fontsize=10)
        axes[r, 0].set_ylabel(name, fontsize=14, parse_math=False)  # a row label, drawn as written
        for c, (label, fmap) in enumerate(
            (("stride-4 backbone", maps.backbone_stride4), ("FPN P2", maps.fpn_p2))
        ):
            data = fmap.detach().float().cpu()
            channels, h, w = data.shape
            mean_ax, pca_ax = axes[r, 1 + 2 * c], axes[r, 2 + 2 * c]
            mean_ax.imshow(
                _normalise(data.mean(0).numpy()), cmap="magma", interpolation="nearest", extent=extent
            )
            mean_ax.set_title(f"{label}: channel mean\n({channels} channels, {w}×{h})", fontsize=10)
            pca_ax.imshow(_pca_rgb(data), interpolation="nearest", extent=extent)
            pca_ax.set_title(f"{label}: 3 principal\ncomponents as RGB", fontsize=10)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        "Fig. 2: stride-4 feature maps. The Benchmarking ViT upsamples stride-16 tokens with 2×2 transposed "
        "convolutions\n(look for a checkerboard); MIMDet's ConvStem computes its stride-4 map from the image",
        fontsize=12,
    )
    return fig


def _normalise(values: np.ndarray) -> np.ndarray:
    """Values mapped to [0, 1] between their 1st and 99th percentiles; a flat map becomes 0.5."""
    low, high = np.percentile(values, (1, 99))
    if high <= low:
        return np.full(values.shape, 0.5)
    return np.clip((values - low) / (high - low), 0, 1)


def _pca_rgb(fmap: torch.Tensor) -> np.ndarray:
    """(C, h, w) -> (h, w, 3): the first three principal components over channels as red, green, blue."""
    channels, height, width = fmap.shape
    pixels = fmap.reshape(channels, -1).T.double().numpy()  # (h*w, C)
    pixels = pixels - pixels.mean(0)
    components = np.linalg.svd(pixels, full_matrices=False)[2][:3]  # (k, C), k <= 3, by variance
    components *= np.sign(components[np.arange(len(components)), np.abs(components).argmax(1)])[:, None]
    projected = pixels @ components.T  # (h*w, k); signs fixed above, so a map always looks the same
    rgb = np.full((height * width, 3), 0.5)
    for k in range(projected.shape[1]):
        rgb[:, k] = _normalise(projected[:, k])
    return rgb.reshape(height, width, 3)


# --- saving a table's figures --------------------------------------------------------------------------

FIGURES: dict[str, Callable[[pd.DataFrame], Figure]] = {
    "table2_heatmaps": plot_table2_heatmaps,
    "table2_accuracy_vs_cost": plot_accuracy_vs_cost,
    "table3_decoders": plot_decoders,
}
"""The figures drawn from records, by file name (``<table>_<figure>`` of ``PAPER_TABLES``' figures);
Tables 1 and 4 compare a few single rows, which their tables show best."""


def write_plots(frame: pd.DataFrame, table: str, outdir: str | Path) -> list[Path]:
    """Save the figures of ``table`` as ``<outdir>/<table>_<figure>.png`` and ``.pdf``; the paths written.

    Every figure is drawn before a file is written, so input a figure cannot use leaves no partial set.
    """
    known = [name for name, t in PAPER_TABLES.items() if t.drawn_from == "records"]
    if table not in known:
        raise PlotError(f"unknown table {table!r}: expected one of {', '.join(known)}")
    names = [f"{table}_{figure}" for figure in PAPER_TABLES[table].figures]
    return _save([(name, FIGURES[name](frame)) for name in names], Path(outdir))


def write_feature_maps(
    runs: Sequence[tuple[str, str, Path, Sequence[str]]], outdir: str | Path, image: np.ndarray | None = None
) -> list[Path]:
    """Fig. 2 of trained runs, ``(name, config file, checkpoint, overrides)`` each, as
    ``<outdir>/fig2_feature_maps.png`` and ``.pdf``; the image is the synthetic dataset's first
    validation image unless given (what ``notebooks/fig2_feature_maps.ipynb`` shows by default)."""
    from mimdet.run.features import example_image, feature_maps, load_run_model  # torch: only for Fig. 2

    image = example_image() if image is None else image
    items = []
    for name, config_file, checkpoint, overrides in runs:
        model, resize = load_run_model(config_file, checkpoint, tuple(overrides))
        items.append((name, feature_maps(model, image, resize)))
    return _save([("fig2_feature_maps", plot_feature_maps(items))], Path(outdir))


def _save(figures: list[tuple[str, Figure]], outdir: Path) -> list[Path]:
    """Each figure as ``<outdir>/<name>.png`` and ``.pdf``, once all are drawn (no partial set), each file
    rendered in memory and written atomically (a full disk leaves no half-written figure)."""
    paths = []
    for name, fig in figures:
        for suffix in ("png", "pdf"):
            path = outdir / f"{name}.{suffix}"
            buffer = io.BytesIO()
            fig.savefig(buffer, format=suffix, dpi=DPI)
            write_bytes_atomic(path, buffer.getbuffer())
            paths.append(path)
    return paths
