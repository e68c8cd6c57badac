"""Where a test's child process waits until it is sent a signal: deterministic interruption points.

Imported by the small scripts the Ctrl-C tests run with ``python -c`` (from the repository root): the
child prints ``stalled`` on stderr when it reaches the point, so the test signals it there and nowhere
else, with no timing to guess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests import REPO


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


def interrupted_at_its_stall(command: list[str], cwd: Path = REPO, **env: str) -> tuple[int, str]:
    """Run ``command`` (a script that stalls; from the repository root unless ``cwd``), send it SIGINT once
    it says ``stalled``: its exit code and what it wrote on stderr after that."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as a terminal's or scancel's target: pytest started as a shell's background job (``make test &``)
        # ignores SIGINT, and a child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    assert "stalled\n" in iter(process.stderr.readline, ""), "it ended without reaching the point"
    process.send_signal(signal.SIGINT)
    try:
        rest = process.communicate(timeout=120)[1]
    except subprocess.TimeoutExpired:
        signals = Path(f"/proc/{process.pid}/status").read_text().splitlines()
        process.kill()
        ignored_or_caught = [line for line in signals if line.startswith(("SigIgn", "SigCgt"))]
        raise AssertionError(f"still running 120 s after SIGINT: {ignored_or_caught}") from None
    return process.returncode, rest
