"""argparse types of the command-line tools' numbers: a bad one is argparse's one line and exit 2, before
any work, instead of a traceback from deep inside a run (a count of 0, a learning rate of nan)."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path


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


# numpy's seeds are 32-bit (detectron2 seeds it with train.seed, and refuses a larger one); so are most
# generators'. mimdet.train's config checks (mimdet.run.resolve) and --seed flags share the bound
SEED_LIMIT = 2**32


def random_seed(text: str) -> int:
    """A random seed (``--seed``): a whole number from 0 to 2**32-1. A negative one is refused, as
    ``mimdet.train`` refuses it: detectron2 takes it for "draw one at random", which no record repeats."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} (allowed: a whole number from 0 to 2**32-1)")
    return value


def output_file(text: str) -> Path:
    """A file to write (``--output``). A path that ends in ``/`` names a folder; ``Path`` would drop the
    slash and write a file of the folder's name."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(
            f"{text} ends in /, a folder (allowed: a file's path, e.g. {text.rstrip('/' + os.sep)}/mae.pth)"
        )
    return Path(text)
