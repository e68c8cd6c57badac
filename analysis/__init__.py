"""Run records in, the paper's tables out: ``load_records`` -> DataFrame -> ``render_table`` (md/LaTeX)."""

from analysis.records import load_records
from analysis.tables import TableError, render_table

__all__ = ["TableError", "load_records", "render_table"]
