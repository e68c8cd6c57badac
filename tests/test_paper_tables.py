"""The registry of paper tables (``mimdet.paper.tables``) against everything that reads it: the CSVs, the
renderers and figures, spec validation, the package data."""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys

import pytest

from analysis import tables
from analysis.plots import FIGURES
from analysis.selection import axis_key, paper_cells
from mimdet.paper.published import PAPER_CSVS, PAPER_DIR, load_paper_csv
from mimdet.paper.tables import LABEL_COLUMN, MIMDET_DEFAULT, PAPER_TABLES, PaperTable, matches
from mimdet.record.schema import Variant
from sweeps.spec import SpecError, parse_spec
from tests import REPO

RECORD_TABLES = [name for name, table in PAPER_TABLES.items() if table.drawn_from == "records"]


@pytest.mark.parametrize("table", PAPER_TABLES.values(), ids=list(PAPER_TABLES))
def test_each_table_is_consistent_with_its_csvs(table: PaperTable) -> None:
    """Every CSV a table names has rows, and each row names one of the table's cells by its axes."""
    variant_fields = {f.name for f in dataclasses.fields(Variant)}
    assert set(table.axes) <= variant_fields and set(table.default) <= variant_fields
    assert set(table.columns) <= set(table.axes) and set(table.layout.values()) <= set(table.axes)
    assert table.selection == {k: v for k, v in table.default.items() if k not in table.axes}
    for csv in table.csvs:
        assert csv in PAPER_CSVS
        rows = load_paper_csv(csv).to_dict("records")
        assert rows, f"{csv}.csv has no rows"
        if table.axes:
            cells = [table.cell(row) for row in rows]
            assert all(cell and set(cell) <= set(table.axes) for cell in cells)
            assert len(paper_cells(table.name, csv)) == len(rows), f"two rows of {csv}.csv name one cell"
    if table.cost is not None:
        assert table.cost.csv in table.csvs
        assert "train_time_h" in load_paper_csv(table.cost.csv).columns


def test_labelled_rows_are_the_csv_rows_and_agree_with_its_columns() -> None:
    """Table 4's rows as variants, as its CSV describes them (hybrid FPN?, random sampling?, decoders)."""
    table = PAPER_TABLES["table4"]
    paper = load_paper_csv("table4").set_index(LABEL_COLUMN)
    assert list(table.labelled_rows) == list(paper.index)
    for label, values in table.labelled_rows.items():
        cell = dict(zip(table.axes, values, strict=True))
        assert paper.loc[label, "hybrid_fpn"] == (cell["fpn_inputs"] == "hybrid")
        assert paper.loc[label, "random_sample"] == (cell["sampling"] == "random")
        assert paper.loc[label, "num_decoders"] == cell["num_decoders"]
    assert table.labelled_rows["row1"] == tuple(MIMDET_DEFAULT[axis] for axis in table.axes)


def test_a_renderer_and_the_figures_exist_for_each_table() -> None:
    """Tables drawn from records have a renderer taking their layout options and a function per figure;
    a table drawn from checkpoints (Fig. 2) has none: ``sweep table`` refuses it."""
    assert list(tables.TABLES) == RECORD_TABLES
    assert sorted(FIGURES) == sorted(f"{n}_{f}" for n in RECORD_TABLES for f in PAPER_TABLES[n].figures)
    for name in RECORD_TABLES:
        parameters = inspect.signature(tables.TABLES[name]).parameters
        assert set(PAPER_TABLES[name].layout) <= set(parameters)
    assert [name for name in PAPER_TABLES if name not in RECORD_TABLES] == ["fig2"]


def test_the_renderers_default_to_the_paper_axes() -> None:
    ratios = sorted({axis_key(r) for r in load_paper_csv("table2")["train_ratio"]})
    assert tuple(ratios) == tables.PAPER_RATIOS
    assert tuple(load_paper_csv("table3")["num_decoders"]) == tables.PAPER_DECODERS


def test_only_the_paper_variants_are_costed_by_the_paper() -> None:
    table2, table3, table4 = (PAPER_TABLES[n] for n in ("table2", "table3", "table4"))
    default = {**MIMDET_DEFAULT, "decoder_fill": "mask_token"}
    assert table2.costs(default) and table3.costs(default) and not table4.costs(default)
    assert not table2.costs({**default, "decoder_fill": "convstem"})  # the paper timed mask tokens
    window = {**default, "sampling": "window", "num_decoders": 0, "train_sample_ratio": 1.0}
    assert table4.costs(window) and not table2.costs(window)
    assert matches(window, table4.cell({LABEL_COLUMN: "row3"}))
    assert not PAPER_TABLES["table1"].costs(default) and not PAPER_TABLES["fig2"].costs(default)


SPEC = """\
name: t
table: {table}
base_config: experiments/tiny_mimdet.py
train: {{}}
"""


@pytest.mark.parametrize("name", PAPER_TABLES)
def test_a_spec_may_name_each_table(name: str) -> None:
    assert parse_spec(SPEC.format(table=name), spec_dir=REPO).table == name


def test_a_spec_naming_another_table_lists_the_registry() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC.format(table="table5"), spec_dir=REPO)
    allowed = ", ".join(map(repr, PAPER_TABLES))
    assert str(caught.value).endswith(f"table: 'table5' is not allowed (allowed: {allowed})")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_the_package_ships_every_csv() -> None:
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as handle:
        data = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["mimdet"]
    shipped = {path.stem for pattern in data for path in (PAPER_DIR.parent).glob(pattern)}
    assert set(PAPER_CSVS) <= shipped
    assert {csv for table in PAPER_TABLES.values() for csv in table.csvs} <= set(PAPER_CSVS)
    assert all(re.fullmatch(r"[a-z0-9_]+", name) for name in PAPER_CSVS)
