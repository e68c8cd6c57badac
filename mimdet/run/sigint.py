"""A Ctrl-C held back while a write runs whose absence would say something else than what happened."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Run the block with SIGINT held back, then deliver it to the handler there was before, if one came.

    A failed run's record cut off by a Ctrl-C left no record, and a run without one reads as interrupted:
    a plain ``sweep run`` started a real failure again. Outside the main thread, where Python sets no
    handler, and where the handler in place was not set from Python, the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)
