"""Where a test's child process waits until it is sent a signal: deterministic interruption points.

Imported by the small scripts the Ctrl-C tests run with ``python -c`` (from the repository root): the
child prints ``stalled`` on stderr when it reaches the point, so the test signals it there and nowhere
else, with no timing to guess.
"""

from __future__ import annotations

import sys
import time
from typing import Any


def stall(*_: Any, seconds: float = 120) -> None:
    """Say so on stderr and wait (for the test's signal)."""
    print("stalled", file=sys.stderr, flush=True)
    time.sleep(seconds)


class _StallFirstImport:
    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, name: str, *_: Any) -> None:
        if name == self.name:
            sys.meta_path.remove(self)
            stall()


def stall_first_import(name: str) -> None:
    """The first import of module ``name`` waits, as torch's takes seconds."""
    sys.meta_path.insert(0, _StallFirstImport(name))  # type: ignore[arg-type]
