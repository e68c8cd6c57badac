"""The paper's published numbers (the CSV files beside this module) as DataFrames.

The files ship inside the package (see ``README.md`` here for their source) and are found next to this
module, so this works from the checkout, an editable install and an installed package alike.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas only when a number is read: spec validation imports the tables, not the numbers
    import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent
PAPER_CSVS = tuple(sorted(path.stem for path in PAPER_DIR.glob("*.csv")))


def load_paper_csv(name: str) -> pd.DataFrame:
    """One of ``PAPER_CSVS`` as printed in the paper (a fresh copy: callers may modify it)."""
    return _load(name).copy()


@functools.cache
def _load(name: str) -> pd.DataFrame:
    import pandas as pd

    if name not in PAPER_CSVS:
        raise ValueError(f"unknown paper table {name!r}: expected one of {', '.join(PAPER_CSVS)}")
    return pd.read_csv(PAPER_DIR / f"{name}.csv")
