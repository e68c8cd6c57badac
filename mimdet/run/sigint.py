"""A Ctrl-C held back while a write runs whose absence would say something else than what happened, and a
Ctrl-C noted so that no other error can pass for it."""

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


@contextmanager
def sigint_noted() -> Iterator[list[int]]:
    """Run the block with a SIGINT handler that notes the signal in the list it yields, then raises
    ``KeyboardInterrupt`` as Python's own handler does; the handler there was before comes back after.

    Code that catches every exception and raises its own (an import inside a config file, a library's bare
    ``except:``) turns a Ctrl-C into another error; the caller that finds the note says "interrupted"
    instead of, say, a config file that cannot be loaded. Outside the main thread nothing is noted.
    """
    noted: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note_and_interrupt(signum: int, _frame: object) -> None:
        noted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note_and_interrupt)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)
