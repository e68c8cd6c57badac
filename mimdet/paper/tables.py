"""Each paper table a spec can regenerate, defined once: ``PAPER_TABLES``.

A ``PaperTable`` says what the rest of the project needs to know about a table: the runs it selects (the
paper's default MIMDet with its axes left free), the variant fields its cells run over, how the rows of
its CSVs (``published``) name those cells, where the paper gives its training cost, which figures it has
and the sweep's values its renderer is limited to. Spec validation accepts exactly these names; the
tables, the figures, collection, the cost estimate and the CLI read the rest from here. Adding a table is
one entry here and its renderer in ``analysis.tables`` (plus its figures in ``analysis.plots``).

Importing this module reads no CSV and needs no pandas: ``sweep plan`` validates specs with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

_V = TypeVar("_V")


def _frozen(mapping: Mapping[str, _V] | None = None) -> Mapping[str, _V]:
    """A read-only copy: a table's definition cannot be changed by a caller."""
    return MappingProxyType(dict(mapping or {}))


MIMDET_DEFAULT = _frozen(
    {
        "model": "mimdet",
        "sampling": "random",
        "fpn_inputs": "hybrid",
        "num_decoders": 4,
        "train_sample_ratio": 0.5,
        "test_sample_ratio": 1.0,
    }
)
"""The paper's default MIMDet (ViT-B, 51.5 / 46.0); the tables vary one or more of these."""

EVALUATION_FIELDS = ("test_sample_ratio",)
"""Variant fields an evaluation sets: a training's cost does not depend on them."""

LABEL_COLUMN = "row"
"""The CSV column naming a row of a table whose rows are labelled (Table 4's ``row1`` ...)."""


def matches(values: Mapping[str, object], wanted: Mapping[str, object]) -> bool:
    """Whether ``values`` has every field of ``wanted`` (a missing field does not match), compared as the
    CSVs and records hold them: 4 == 4.0, "hybrid" == "hybrid"."""
    return all(key in values and _same(values[key], value) for key, value in wanted.items())


def _same(a: object, b: object) -> bool:
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return not isinstance(a, bool) and not isinstance(b, bool) and float(a) == float(b)
    return a == b


@dataclass(frozen=True)
class PaperCost:
    """Where the paper prints a table's training time (32 V100 hours) and memory at batch 1.

    ``csv``'s rows name their cells as the table's (``PaperTable.cell``) and hold ``train_time_h`` and,
    where the paper gives it, ``train_mem_gb_bs1``. ``requires`` narrows the trainings the table costs
    beyond its selection: a variant the paper did not time with these numbers is not priced by them.
    """

    csv: str
    requires: Mapping[str, object] = field(default_factory=_frozen)


@dataclass(frozen=True)
class PaperTable:
    """One paper table (or figure) a spec's ``table:`` names."""

    name: str  # the spec's ``table:``, file names of its output
    title: str  # as messages and notes say it: "Table 2"
    csvs: tuple[str, ...] = ()  # its numbers in the paper, CSV files beside this module
    axes: tuple[str, ...] = ()  # variant fields its cells run over; ``default`` fixes the others
    columns: Mapping[str, str] = field(default_factory=_frozen)  # axis -> CSV column holding it
    labelled_rows: Mapping[str, tuple[object, ...]] = field(default_factory=_frozen)  # label -> on axes
    layout: Mapping[str, str] = field(default_factory=_frozen)  # renderer keyword -> axis a sweep varies
    cost: PaperCost | None = None  # where the paper gives its training cost
    figures: tuple[str, ...] = ()  # ``<name>_<figure>`` files ``sweep plot`` draws
    drawn_from: Literal["records", "checkpoints"] = "records"  # checkpoints: figures only, no table
    default: Mapping[str, object] = field(default_factory=lambda: MIMDET_DEFAULT)

    @property
    def selection(self) -> dict[str, object]:
        """The runs the table shows: the default's fields that are not its axes."""
        return {key: value for key, value in self.default.items() if key not in self.axes}

    def cell(self, paper_row: Mapping[str, object]) -> dict[str, object]:
        """The axis values a row of the table's CSVs names (only those the CSV has a column for)."""
        if self.labelled_rows:
            return dict(zip(self.axes, self.labelled_rows[str(paper_row[LABEL_COLUMN])], strict=True))
        return {axis: paper_row[column] for axis, column in self.columns.items() if column in paper_row}

    def costs(self, training: Mapping[str, object]) -> bool:
        """Whether the paper's cost for this table can price ``training`` (a run's variant fields)."""
        if self.cost is None:
            return False
        fixed = {k: v for k, v in self.selection.items() if k not in EVALUATION_FIELDS}
        return matches(training, {**fixed, **self.cost.requires})


_DECODERS_WITH_MASK_TOKENS = _frozen({"decoder_fill": "mask_token"})  # the paper's decoders, as it timed


def _registry(*tables: PaperTable) -> Mapping[str, PaperTable]:
    return MappingProxyType({table.name: table for table in tables})


PAPER_TABLES: Mapping[str, PaperTable] = _registry(
    PaperTable(
        "table1",
        "Table 1",
        csvs=("table1",),
    ),
    PaperTable(
        "table2",
        "Table 2",
        csvs=("table2", "table2_cost"),
        axes=("train_sample_ratio", "test_sample_ratio"),
        columns=_frozen({"train_sample_ratio": "train_ratio", "test_sample_ratio": "infer_ratio"}),
        layout=_frozen({"train_ratios": "train_sample_ratio", "infer_ratios": "test_sample_ratio"}),
        cost=PaperCost("table2_cost", _DECODERS_WITH_MASK_TOKENS),
        figures=("heatmaps", "accuracy_vs_cost"),
    ),
    PaperTable(
        "table3",
        "Table 3",
        csvs=("table3",),
        axes=("num_decoders",),
        columns=_frozen({"num_decoders": "num_decoders"}),
        layout=_frozen({"decoders": "num_decoders"}),
        cost=PaperCost("table3", _DECODERS_WITH_MASK_TOKENS),
        figures=("decoders",),
    ),
    PaperTable(
        "table4",
        "Table 4",
        csvs=("table4",),
        axes=("fpn_inputs", "sampling", "num_decoders", "train_sample_ratio"),
        labelled_rows=_frozen(
            {
                "row1": ("hybrid", "random", 4, 0.5),
                "row2": ("hybrid", "random", 1, 0.5),
                "row3": ("hybrid", "window", 0, 1.0),  # every token, in 7x7 windows: no sampling, no decoder
                "row4": ("vit", "window", 0, 1.0),
            }
        ),
        # rows 1 and 2 are runs of Tables 2 and 3, which give their cost with memory
        cost=PaperCost("table4", _frozen({"sampling": "window"})),
    ),
    PaperTable(
        "fig2",
        "Fig. 2",
        figures=("feature_maps",),
        drawn_from="checkpoints",
    ),
)
"""The paper's tables by name, in the paper's order (the order spec errors list them in)."""
