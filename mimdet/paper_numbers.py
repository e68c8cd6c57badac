"""The paper's published numbers (``mimdet/paper/*.csv``) as DataFrames, to print beside measured ones.

They are facts about the paper, not results: the sweep engine costs a plan with them and the analysis prints
them beside a user's tables, so they live here, in the bottom layer both depend on. The files ship inside the
package (see ``mimdet/paper/README.md`` for their source) and are found next to this module, so this works
from the checkout, an editable install and an installed package alike.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent / "paper"
PAPER_TABLES = ("table1", "table2", "table2_cost", "table3", "table4", "released_models")


def load_paper_table(name: str) -> pd.DataFrame:
    """One of ``PAPER_TABLES`` as printed in the paper (a fresh copy: callers may modify it)."""
    return _load(name).copy()


@functools.cache
def _load(name: str) -> pd.DataFrame:
    if name not in PAPER_TABLES:
        raise ValueError(f"unknown paper table {name!r}: expected one of {', '.join(PAPER_TABLES)}")
    return pd.read_csv(PAPER_DIR / f"{name}.csv")
