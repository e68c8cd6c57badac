"""argparse types of the command-line tools' numbers: a bad one is argparse's one line and exit 2, before
any work, instead of a traceback from deep inside a run (a count of 0, a learning rate of nan)."""

from __future__ import annotations

import argparse
import math


def count(text: str) -> int:
    """Something counted (``--steps``, ``--max-parallel``, ``--lines``): a whole number, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a count (allowed: 1 or more)")
    return value


def positive_number(text: str) -> float:
    """A rate or a size above 0 that arithmetic can use (``--lr``): finite, so not nan or inf."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} (allowed: a finite number above 0)")
    return value
