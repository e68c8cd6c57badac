"""The paper's tables from records: layouts cell by cell, states, paper figures, LaTeX, bad input."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from analysis import tables
from analysis.records import load_records
from analysis.tables import TableError, render_table, render_table2, render_table3
from mimdet.paper.published import PAPER_CSVS, load_paper_csv
from mimdet.record.examples import example_record, example_variant
from mimdet.record.schema import (
    ROW_COLUMNS,
    Cost,
    ParamCounts,
    PeakMemKind,
    RunRecord,
    Stage,
    Status,
    record_to_row,
    write_record,
)

GIB = 2**30
_serial = iter(range(10**6))


def make_record(
    train: float = 0.5,
    infer: float = 1.0,
    box: float | None = 40.0,
    mask: float | None = 35.0,
    *,
    stage: Stage = "train",
    status: Status = "completed",
    params: int = 127_560_000,
    hours: float | None = 2.0,
    mem_gib: float | None = 4.0,
    mem_kind: PeakMemKind = "cuda_max_allocated",
    created_at: str = "2025-01-01T00:00:00+00:00",
    **variant: Any,
) -> RunRecord:
    """A record with the fields the tables read; cost only on training records, as the run writes them."""
    training = stage == "train"
    memory = int(mem_gib * GIB) if training and mem_gib is not None else None
    return example_record(
        f"r{next(_serial):05d}",
        stage=stage,
        status=status,
        variant=example_variant(train_sample_ratio=train, test_sample_ratio=infer, **variant),
        box=box,
        mask=mask,
        created_at=created_at,
        params=ParamCounts(params, {"encoder": params // 2}),
        cost=Cost(
            hours * 3600 if training and hours is not None else None,
            None,
            memory,
            mem_kind if training else None,
            None,
        ),
    )


BENCHMARKING = dict(model="benchmarking", sampling="all", fpn_inputs="vit", num_decoders=0)


def row(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return record_to_row(make_record(*args, **kwargs))


def status_row(status: str, train: float = 0.5, infer: float = 1.0, **variant: Any) -> dict[str, Any]:
    """A run without a record yet, as the sweeps layer reports it: variant columns and a status."""
    base = dict(model="mimdet", sampling="random", fpn_inputs="hybrid", num_decoders=4, stage="train")
    return {**base, **variant, "train_sample_ratio": train, "test_sample_ratio": infer, "status": status}


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def md_cells(text: str) -> list[list[str]]:
    """A Markdown table as rows of cell strings (header first, alignment rule dropped)."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    parsed = [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]
    return [parsed[0], *parsed[2:]]


# --- Table 2 --------------------------------------------------------------------------------------


def tiny_sweep() -> pd.DataFrame:
    """Ratios {25 %, 50 %, 100 %}: completed, queued, running, failed and missing cells."""
    return frame(
        row(0.25, 1.0, 30.0, 27.5, hours=1.5, mem_gib=3.0),
        row(0.25, 0.25, 20.0, 18.0, stage="eval"),
        status_row("queued", 0.25, 0.5, stage="eval"),
        row(0.5, 1.0, 33.25, 29.0, hours=2.25, mem_gib=0.5, mem_kind="cpu_peak_rss_delta"),
        status_row("running", 0.5, 0.5, stage="eval"),
        row(1.0, 1.0, None, None, status="failed", hours=None, mem_gib=None),
    )


def test_table2_tiny_sweep_is_a_3x3_triangle() -> None:
    cells = md_cells(render_table2(tiny_sweep()))
    assert cells == [
        ["train ↓ / inference →", "25%", "50%", "100%", "training time", "training mem (bs 1)"],
        ["25%", "20.0 / 18.0", "queued", "30.0 / 27.5", "1.5 h", "3.0 G"],
        ["50%", "", "running", "33.2 / 29.0", "2.2 h", "0.5 G (CPU RSS)"],
        ["100%", "", "", "failed", "failed", "failed"],
    ]


def test_table2_missing_cells_and_ratio_arguments() -> None:
    rows = tiny_sweep()
    cells = md_cells(render_table2(rows[rows["test_sample_ratio"] != 0.5]))
    assert [c[0] for c in cells] == ["train ↓ / inference →", "25%", "50%", "100%"]
    assert cells[0][1:3] == ["25%", "100%"]
    assert cells[2][1:3] == ["", "33.2 / 29.0"]
    only = md_cells(render_table2(tiny_sweep(), train_ratios=[0.5], infer_ratios=[0.25, 1.0]))
    assert only == [
        ["train ↓ / inference →", "25%", "100%", "training time", "training mem (bs 1)"],
        ["50%", "", "33.2 / 29.0", "2.2 h", "0.5 G (CPU RSS)"],
    ]
    no_eval = frame(row(0.25, 1.0), row(0.5, 0.25, stage="eval"), row(0.5, 1.0))
    assert md_cells(render_table2(no_eval))[1] == ["25%", "missing", "40.0 / 35.0", "2.0 h", "4.0 G"]


def test_table2_with_paper_matches_the_csv_cell_by_cell() -> None:
    paper = load_paper_csv("table2")
    cost = load_paper_csv("table2_cost").set_index("train_ratio")
    # every cell a training record: cost cells take any of them, whatever ratio it was evaluated at
    rows = [row(r.train_ratio, r.infer_ratio, r.ap_box - 1.0, r.ap_mask + 0.5) for r in paper.itertuples()]
    cells = md_cells(render_table2(frame(*rows), with_paper=True))
    ratios = list(tables.PAPER_RATIOS)
    assert cells[0][1:6] == ["12.5%", "25%", "50%", "75%", "100%"]
    for i, train in enumerate(ratios):
        for j, infer in enumerate(ratios):
            cell = cells[i + 1][j + 1]
            if infer < train:
                assert cell == ""
                continue
            p = paper[(paper.train_ratio == train) & (paper.infer_ratio == infer)].iloc[0]
            assert cell == (
                f"{p.ap_box - 1:.1f} / {p.ap_mask + 0.5:.1f} "
                f"(paper {p.ap_box:.1f} / {p.ap_mask:.1f}, Δ −1.0 / +0.5)"
            )
        mem = cost.loc[train, "train_mem_gb_bs1"]
        assert cells[i + 1][6] == f"2.0 h (paper {cost.loc[train, 'train_time_h']:.1f} h)"
        assert cells[i + 1][7] == (
            "4.0 G (paper oom)" if mem == "oom" else f"4.0 G (paper {float(mem):.1f} G)"
        )


def test_cell_state_precedence_and_latest_completed() -> None:
    def only_cell(*rows: dict[str, Any]) -> str:
        return md_cells(render_table2(frame(*rows), train_ratios=[0.5], infer_ratios=[1.0]))[1][1]

    assert only_cell(status_row("cancelled"), status_row("failed")) == "failed"
    assert only_cell(status_row("failed"), status_row("interrupted")) == "interrupted"
    assert only_cell(status_row("interrupted"), status_row("new")) == "new"
    assert only_cell(status_row("new"), status_row("queued")) == "queued"
    assert only_cell(status_row("queued"), status_row("running")) == "running"
    assert only_cell(status_row("running"), row(0.5, 1.0, 41.0, 36.0)) == "41.0 / 36.0"
    newer = row(0.5, 1.0, 42.0, 37.0, created_at="2025-02-01T00:00:00+00:00")
    assert only_cell(newer, row(0.5, 1.0, 41.0, 36.0)) == "42.0 / 37.0"


# --- repeats over seeds -----------------------------------------------------------------------------


def seeded(seed: int, *args: Any, extra: str = "", **kwargs: Any) -> dict[str, Any]:
    """A row of a run with ``train.seed=seed`` and the ``extra`` overrides, as a sweep over seeds writes
    it (its own output folder, an operational key, besides)."""
    overrides = f"train.output_dir=runs/s{seed} train.seed={seed} {extra}".strip()
    return {**row(*args, **kwargs), "overrides": overrides}


def one_cell(rows: pd.DataFrame, fmt: tables.Format = "md", with_paper: bool = False) -> str:
    """Table 2 at training ratio 0.5 and inference ratio 1.0 only."""
    return render_table2(rows, fmt=fmt, with_paper=with_paper, train_ratios=[0.5], infer_ratios=[1.0])


def two_seeds(*more: dict[str, Any]) -> pd.DataFrame:
    return frame(
        seeded(0, 0.5, 1.0, 41.0, 36.0, hours=2.0),
        seeded(1, 0.5, 1.0, 43.0, 37.0, hours=3.0, created_at="2025-01-02T00:00:00+00:00"),
        *more,
    )


def test_seed_repeats_are_averaged_with_n_and_sd_in_markdown_and_latex() -> None:
    """Before: the cell showed seed 1's 43.0 / 37.0 alone, seed 0 dropped without a word."""
    assert md_cells(one_cell(two_seeds()))[1] == [
        "50%",
        "42.0 / 36.5 (n=2, sd 1.4 / 0.7)",
        "2.5 h (n=2, sd 0.7)",
        "4.0 G (n=2, sd 0.0)",
    ]
    assert "50\\% & 42.0 / 36.5 (n=2, sd 1.4 / 0.7) & 2.5 h (n=2, sd 0.7) & 4.0 G (n=2, sd 0.0) \\\\" in (
        one_cell(two_seeds(), fmt="latex")
    )
    paper = load_paper_csv("table2").set_index(["train_ratio", "infer_ratio"]).loc[(0.5, 1.0)]
    assert md_cells(one_cell(two_seeds(), with_paper=True))[1][1] == (
        f"42.0 / 36.5 (n=2, sd 1.4 / 0.7) (paper {paper.ap_box:.1f} / {paper.ap_mask:.1f}, "
        f"Δ −{paper.ap_box - 42.0:.1f} / −{paper.ap_mask - 36.5:.1f})"
    )
    # a seed run twice counts once, with its latest run; another output folder is no difference
    again = seeded(0, 0.5, 1.0, 45.0, 38.0, hours=2.0, created_at="2025-01-03T00:00:00+00:00")
    again["overrides"] = again["overrides"].replace("runs/s0", "runs/s0-again")
    assert md_cells(one_cell(two_seeds(again)))[1][1] == "44.0 / 37.5 (n=2, sd 1.4 / 0.7)"


def test_evaluation_draws_are_repeats_too() -> None:
    """Evaluations of one training at several ``eval_seed``s (other draws of the kept tokens): averaged,
    with the training seeds, instead of one shown (the CLI benchmark's store of 10,000 runs has them)."""
    draws = [
        seeded(
            seed, 0.5, 1.0, 40.0 + 2 * seed + draw, 36.0, extra=f"model.backbone.bottom_up.eval_seed={draw}"
        )
        for seed in (0, 1)
        for draw in (0, 1)
    ]
    assert md_cells(one_cell(frame(*draws)))[1][1] == "41.5 / 36.0 (n=4, sd 1.3 / 0.0)"


def test_table3_relative_cells_are_means_over_repeats() -> None:
    rows = frame(
        *(seeded(s, 0.5, 1.0, 40.0 + s, 35.0, num_decoders=1, hours=1.0 + s) for s in (0, 1)),
        seeded(0, 0.5, 1.0, 44.0, 39.0, num_decoders=4, hours=3.0),
    )
    cells = md_cells(render_table3(rows, decoders=[1, 4]))
    assert cells[1][1] == "40.5 (n=2, sd 0.7)" and cells[1][5] == "1.00× (1.5 h) (n=2, sd 0.7)"
    assert cells[2][1] == "44.0" and cells[2][5] == "2.00× (3.0 h)"


def test_a_partial_repeat_says_how_many_are_done() -> None:
    running = {**status_row("running"), "overrides": "train.seed=2"}
    assert md_cells(one_cell(two_seeds(running)))[1][1:3] == [
        "42.0 / 36.5 (2 of 3 done, sd 1.4 / 0.7)",
        "2.5 h (2 of 3 done, sd 0.7)",
    ]
    failed = {**status_row("failed"), "overrides": "train.seed=1"}
    alone = frame(seeded(0, 0.5, 1.0, 41.0, 36.0), failed)
    assert md_cells(one_cell(alone))[1][1] == "41.0 / 36.0 (1 of 2 done)"


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        (("optimizer.lr=0.001", "optimizer.lr=2e-3"), "optimizer.lr 0.001, 2e-3"),
        (("", "train.eval_precise_bn_iters=200"), "train.eval_precise_bn_iters 200, unset"),
        (("dataloader.train.dataset.names='my data'", ""), "dataloader.train.dataset.names 'my data', unset"),
    ],
)
def test_runs_that_differ_in_more_than_the_seed_are_refused_in_one_line(
    extra: tuple[str, str], detail: str
) -> None:
    """Before: the cell showed the latest of them, as if the other had never run."""
    rows = frame(
        seeded(0, 0.5, 1.0, 41.0, 36.0, extra=extra[0]), seeded(1, 0.5, 1.0, 43.0, 37.0, extra=extra[1])
    )
    with pytest.raises(TableError) as error:
        one_cell(rows)
    assert str(error.value) == (
        f"Table 2 cell (train 50%, inference 100%) mixes completed runs that differ in {detail}, which the "
        "table has no axis for (it averages only repeats over train.seed and "
        "model.backbone.bottom_up.eval_seed): keep one value in the spec or filter the frame first"
    )


def test_training_cost_ignores_test_time_keys_and_restated_variant_keys() -> None:
    """A training's cost does not depend on how it is evaluated (a sweep's trainings leave AP to their
    evaluations); ``num_decoders=4`` restates a column the cell's runs agree on."""
    rows = frame(
        seeded(0, 0.5, 1.0, None, None, hours=2.0, extra="train.eval_precise_bn_iters=200"),
        seeded(1, 0.5, 1.0, None, None, hours=3.0, extra="model.backbone.bottom_up.num_decoders=4"),
        seeded(0, 0.5, 1.0, 41.0, 36.0, stage="eval"),
        seeded(1, 0.5, 1.0, 43.0, 37.0, stage="eval", extra="model.backbone.bottom_up.num_decoders=4"),
    )
    assert md_cells(one_cell(rows))[1][1:3] == ["42.0 / 36.5 (n=2, sd 1.4 / 0.7)", "2.5 h (n=2, sd 0.7)"]


# --- Table 3 --------------------------------------------------------------------------------------

DECODER_RUNS = {1: (118_100_000, 1.0, 2.0), 2: (121_260_000, 1.25, 2.5), 4: (127_560_000, 1.5, 3.0)}


def decoder_frame() -> pd.DataFrame:
    return frame(
        *(
            row(0.5, 1.0, 40.0 + n, 35.0 + n, num_decoders=n, params=p, hours=h, mem_gib=m)
            for n, (p, h, m) in DECODER_RUNS.items()
        ),
        status_row("queued", num_decoders=8),
    )


def test_table3_relative_to_the_one_decoder_row() -> None:
    assert md_cells(render_table3(decoder_frame())) == [
        ["# decoders", "AP box", "AP mask", "# params", "training mem (bs 1)", "training time"],
        ["1", "41.0", "36.0", "1.00× (118.1 M)", "1.00× (2.0 G)", "1.00× (1.0 h)"],
        ["2", "42.0", "37.0", "1.03× (121.3 M)", "1.25× (2.5 G)", "1.25× (1.2 h)"],
        ["4", "44.0", "39.0", "1.08× (127.6 M)", "1.50× (3.0 G)", "1.50× (1.5 h)"],
        ["8", "queued", "queued", "queued", "queued", "queued"],
    ]


def test_table3_with_paper_matches_the_csv() -> None:
    paper = load_paper_csv("table3").set_index("num_decoders")
    cells = md_cells(render_table(name="table3", frame=decoder_frame(), with_paper=True))
    one = paper.loc[1]
    for line in cells[1:]:
        p = paper.loc[int(line[0])]
        assert f"(paper {p.ap_box:.1f}" in line[1] and f"(paper {p.ap_mask:.1f}" in line[2]
        assert f"paper {p.params_m / one.params_m:.2f}×, {int(p.params_m)} M" in line[3]
        assert (
            f"paper {p.train_mem_gb_bs1 / one.train_mem_gb_bs1:.2f}×, {p.train_mem_gb_bs1:.1f} G" in line[4]
        )
        assert f"paper {p.train_time_h / one.train_time_h:.2f}×, {p.train_time_h:.1f} h" in line[5]
    assert cells[1][1] == "41.0 (paper 49.9, Δ −8.9)"
    assert cells[3][3] == "1.08× (127.6 M) (paper 1.08×, 127 M, Δ +0.6)"
    assert cells[4][1] == "queued (paper 51.6)"


# --- Table 4 --------------------------------------------------------------------------------------


def test_table4_rows_ticks_and_paper() -> None:
    rows = frame(
        row(0.5, 1.0, 45.0, 40.0, num_decoders=4, params=127_560_000, hours=3.0),
        row(0.5, 1.0, 44.0, 39.0, num_decoders=1, params=118_100_000, hours=2.0),
        row(1.0, 1.0, 43.0, 38.0, sampling="window", num_decoders=0, params=113_400_000, hours=2.5),
        status_row("failed", 1.0, 1.0, sampling="window", fpn_inputs="vit", num_decoders=0),
        row(0.25, 1.0, 1.0, 1.0, num_decoders=4),  # a Table 2 run: no row of Table 4
    )
    cells = md_cells(render_table("table4", rows))
    assert cells == [
        ["", "hybrid FPN?", "rand. sample?", "# decoders", "AP box", "AP mask", "# params", "time"],
        ["row1", "✓", "✓", "4", "45.0", "40.0", "127.6 M", "3.0 h"],
        ["row2", "✓", "✓", "1", "44.0", "39.0", "118.1 M", "2.0 h"],
        ["row3", "✓", "✗", "0", "43.0", "38.0", "113.4 M", "2.5 h"],
        ["row4", "✗", "✗", "0", "failed", "failed", "failed", "failed"],
    ]
    paper = load_paper_csv("table4").set_index("row")
    for line in md_cells(render_table("table4", rows, with_paper=True))[1:]:
        p = paper.loc[line[0]]
        assert [line[1] == "✓", line[2] == "✓", int(line[3])] == [
            p.hybrid_fpn,
            p.random_sample,
            p.num_decoders,
        ]
        assert f"(paper {p.ap_box:.1f}" in line[4] and f"(paper {p.ap_mask:.1f}" in line[5]
        assert f"(paper {int(p.params_m)} M" in line[6] and f"(paper {p.train_time_h:.1f} h)" in line[7]


# --- Table 1 --------------------------------------------------------------------------------------


def test_table1_measured_rows_beside_the_reference_rows() -> None:
    rows = frame(
        row(0.5, 1.0, 51.0, 45.5),
        row(0.25, 1.0, 1.0, 1.0),  # not the default MIMDet: not in Table 1
        status_row("running", 1.0, 1.0, **BENCHMARKING),
    )
    cells = md_cells(render_table("table1", rows))
    paper = load_paper_csv("table1").set_index("backbone")
    assert cells[0] == [
        "backbone",
        "pre-train",
        "fine-tune epochs",
        "data aug",
        "rel pos?",
        "AP box",
        "AP mask",
    ]
    assert cells[1][0] == "*representative hierarchical architecture (paper)*"
    for line, name in zip(cells[2:4], ("Swin+", "MViTv2"), strict=True):
        p = paper.loc[name]
        assert line == [
            name,
            p.pretrain,
            str(p.finetune_epochs),
            p.data_aug,
            "✓",
            f"{p.ap_box}",
            f"{p.ap_mask}",
        ]
    assert cells[4][0] == "*adapted vanilla Vision Transformer*"
    assert cells[5] == [
        "Benchmarking ViT (Li et al.), ours",
        "MAE-1K",
        "100",
        "LSJ",
        "✓",
        "running",
        "running",
    ]
    assert cells[6] == ["MIMDet, ours", "MAE-1K", "36", "resize & crop", "✗", "51.0", "45.5"]
    with_paper = md_cells(render_table("table1", rows, with_paper=True))
    assert with_paper[6][5:] == ["51.0 (paper 51.5, Δ −0.5)", "45.5 (paper 46.0, Δ −0.5)"]
    assert with_paper[5][5:] == ["running (paper 50.3)", "running (paper 44.9)"]
    only_mimdet = md_cells(render_table("table1", frame(row(0.5, 1.0, 51.0, 45.5))))
    assert only_mimdet[5][5:] == ["missing", "missing"]


# --- LaTeX, determinism -----------------------------------------------------------------------------


def all_tables_frame() -> pd.DataFrame:
    return pd.concat(
        [
            tiny_sweep(),
            decoder_frame(),
            frame(
                row(1.0, 1.0, 43.0, 38.0, sampling="window", num_decoders=0),
                row(1.0, 1.0, 42.0, 37.0, **BENCHMARKING),
            ),
        ],
        ignore_index=True,
    )


def render_options() -> list[tuple[str, dict[str, Any]]]:
    return [("table1", {}), ("table2", {"train_ratios": [0.25, 0.5]}), ("table3", {}), ("table4", {})]


UNESCAPED = re.compile(r"(?<!\\)[%_&#$]")


def latex_cells(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.endswith(r"\\"):
            cells = [c.strip() for c in re.split(r"(?<!\\)&", line[: -len(r"\\")])]
            rows.append([re.sub(r"\$[^$]*\$", "", c) for c in cells])  # math ($\times$, $-$) is LaTeX's own
    return rows


def braces_balanced(text: str) -> bool:
    depth = 0
    for char in re.sub(r"\\[{}]", "", text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("with_paper", [False, True])
def test_latex_is_well_formed(with_paper: bool) -> None:
    rows = all_tables_frame()
    for name, layout in render_options():
        text = render_table(name, rows, fmt="latex", with_paper=with_paper, **layout)
        lines = text.splitlines()
        assert lines[0].startswith(r"\begin{tabular}{") and lines[-1] == r"\end{tabular}"
        assert [line for line in lines if line in (r"\toprule", r"\bottomrule")] == [
            r"\toprule",
            r"\bottomrule",
        ]
        assert lines[1] == r"\toprule" and lines[3] == r"\midrule" and lines[-2] == r"\bottomrule"
        assert braces_balanced(text), name
        width = len(re.match(r"\\begin\{tabular\}\{(\w+)\}", lines[0]).group(1))
        for cells in latex_cells(text):
            if cells[0].startswith(r"\multicolumn"):
                continue
            assert len(cells) == width, (name, cells)
            for cell in cells:
                assert not UNESCAPED.search(cell), (name, cell)
    table1 = render_table("table1", rows, fmt="latex")
    assert r"resize \& crop" in table1 and r"\checkmark{}" in table1 and r"\multicolumn{7}{l}" in table1
    assert r"12.5\%" in render_table("table2", pd.concat([rows, frame(row(0.125, 1.0))]), fmt="latex")


def test_latex_escapes_special_characters_in_cells() -> None:
    grid = tables._Grid(("a_b", "50% & more"), (("x#1 {y}", "~^\\ $"),), "lc")
    body = latex_cells(tables._latex(grid))
    assert body[0] == [r"a\_b", r"50\% \& more"]
    assert body[1] == [r"x\#1 \{y\}", r"\textasciitilde{}\textasciicircum{}\textbackslash{} \$"]


def test_rendering_is_deterministic_and_independent_of_row_order() -> None:
    rows = all_tables_frame()
    shuffled = rows.sample(frac=1.0, random_state=7).reset_index(drop=True)
    for name, layout in render_options():
        for fmt in ("md", "latex"):
            first = render_table(name, rows, fmt=fmt, with_paper=True, **layout)
            assert render_table(name, rows, fmt=fmt, with_paper=True, **layout) == first
            assert render_table(name, shuffled, fmt=fmt, with_paper=True, **layout) == first


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda f: render_table("table2", f.drop(columns=["bbox_AP"])),
            r"Table 2: the frame has no column 'bbox_AP'",
        ),
        (
            lambda f: render_table("table3", f.drop(columns=["status"])),
            r"Table 3: the frame has no column 'status'",
        ),
        (lambda f: render_table("table4", f.drop(columns=["sampling"])), r"no column 'sampling'"),
        (lambda f: render_table("table2", [1, 2]), r"expected a pandas DataFrame, got list"),
        (lambda f: render_table("table5", f), r"unknown table 'table5': expected one of table1, table2"),
        (lambda f: render_table("table2", f, fmt="html"), r"unknown format 'html'"),
        (lambda f: render_table("table3", f, ratios=[0.5]), r"table3: unknown layout option 'ratios'"),
        (
            lambda f: render_table("table3", f[f["num_decoders"] == 4]),
            r"Table 3 compares numbers of decoders",
        ),
        (
            lambda f: render_table("table2", f, where={"num_decoders": None}),
            r"differ in num_decoders 1, 2, 4",
        ),
        (lambda f: render_table("table2", f, where={"embed_dim": 64}), r"Table 2: no runs at the requested"),
        (lambda f: render_table("table2", f, where={"seed": 1}), r"no column 'seed'"),
        (lambda f: render_table("table4", f[f["sampling"] != "window"].iloc[:0]), r"Table 4: none of the"),
        (lambda f: render_table("table1", f[f["model"] == "none"]), r"Table 1: the frame has no MIMDet"),
    ],
)
def test_bad_input_is_a_table_error(call: Any, message: str) -> None:
    with pytest.raises(TableError, match=message):
        call(all_tables_frame())


def test_mixed_model_sizes_and_unknown_status_are_table_errors() -> None:
    mixed = frame(row(0.5, 1.0), row(0.25, 1.0, embed_dim=64))
    with pytest.raises(TableError, match=r"Table 2 mixes completed runs that differ in embed_dim 64, 768"):
        render_table2(mixed)
    with pytest.raises(TableError, match=r"unknown status 'done'"):
        render_table2(frame(row(0.5, 1.0), status_row("done")))
    assert issubclass(TableError, ValueError)


# --- records and paper numbers --------------------------------------------------------------------


def test_load_records_from_a_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    records = [make_record(0.5, 1.0, 41.0, 36.0), make_record(0.25, 1.0, 39.0, 34.0)]
    for record in records:
        write_record(record, tmp_path / "runs" / record.run_id / "record.json")
    bad = tmp_path / "runs" / "broken" / "record.json"
    bad.parent.mkdir()
    bad.write_text('{"schema_version": 1}')
    with caplog.at_level(logging.WARNING):
        loaded = load_records(tmp_path)
    assert sorted(loaded["run_id"]) == sorted(r.run_id for r in records)
    assert f"{bad}: run_id: missing" in caplog.text
    with pytest.raises(ValueError, match="run_id: missing"):
        load_records(tmp_path, strict=True)
    csv = tmp_path / "results.csv"
    loaded.to_csv(csv, index=False)
    assert render_table2(load_records(csv), fmt="latex") == render_table2(loaded, fmt="latex")
    assert list(load_records(tmp_path / "runs" / "broken").columns) == list(ROW_COLUMNS)


def test_load_records_bad_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="no such results store"):
        load_records(tmp_path / "nowhere")
    (tmp_path / "results.txt").write_text("")
    with pytest.raises(ValueError, match=r"a \.parquet or a \.csv file"):
        load_records(tmp_path / "results.txt")
    (tmp_path / "results.parquet").write_bytes(b"")

    def no_engine(*args: Any, **kwargs: Any) -> None:
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ImportError, match="pip install pyarrow"):
        load_records(tmp_path / "results.parquet")


def test_paper_numbers_load() -> None:
    shapes = {name: load_paper_csv(name).shape for name in PAPER_CSVS}
    assert shapes["table2"] == (15, 4) and shapes["table3"] == (4, 6) and shapes["table4"] == (4, 8)
    copy = load_paper_csv("table1")
    copy.loc[0, "ap_box"] = 0.0
    assert load_paper_csv("table1").loc[0, "ap_box"] == 49.2


def test_a_sweeps_silent_training_does_not_shadow_its_evaluation() -> None:
    """A sweep's training writes no AP (its evaluations do); the cell shows the evaluation's numbers."""
    rows = frame(
        row(0.5, 1.0, None, None, stage="train", created_at="2025-02-01T00:00:00+00:00"),
        row(0.5, 1.0, 44.4, 33.3, stage="eval", created_at="2025-01-01T00:00:00+00:00"),
    )
    text = render_table2(rows, train_ratios=(0.5,), infer_ratios=(1.0,))
    assert "44.4 / 33.3" in text
    assert "2.0 h" in text  # the cost still comes from the training
