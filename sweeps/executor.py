"""What the engine asks of an executor (local processes, SLURM jobs), and what an executor answers.

Every executor starts runs (``submit``), says where their jobs are (``describe``) and stops them
(``cancel``), each by run id, through ``JobHandle``s it writes into the runs' folders. ``submit`` returns
once the jobs are started; whether anything then waits for them is the engine's business (``engine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .handle import JobHandle
from .runs import RunSpec, RunState


class ExecutorUnavailable(RuntimeError):
    """An executor cannot say where its jobs are (its scheduler does not answer): nothing is decided."""


@dataclass(frozen=True)
class NotSubmitted:
    """Why a scheduler did not take a run. ``for_good``: it never will as the spec stands (a partition the
    cluster does not have), so no retry was made and the spec must change."""

    why: str
    for_good: bool = False


@dataclass(frozen=True)
class JobStatus:
    """What an executor knows of one job: its state and a line on where it is or how it ended."""

    state: RunState
    detail: str = ""


class Executor(Protocol):
    """Starts, follows and stops the jobs of runs; ``name`` is what its handles say in ``executor``."""

    @property
    def name(self) -> str: ...

    @property
    def skipped(self) -> Mapping[str, NotSubmitted]:
        """The runs the last ``submit`` left out, and why."""
        ...

    def submit(self, runs: list[RunSpec]) -> dict[str, JobHandle]:
        """Start these runs (the caller chose and claimed them); the handles of those now started."""
        ...

    def describe(self, handles: Mapping[str, JobHandle]) -> dict[str, JobStatus]:
        """Each job's state and where it is, by run id (of this executor's handles)."""
        ...

    def cancel(self, handles: Mapping[str, JobHandle]) -> int:
        """Stop these runs' jobs and mark their handles cancelled; how many it cancelled."""
        ...
