"""What ``sweep run`` decides: which runs of a plan to start, on which executor, and what is left alone.

A run is started when it is new or was interrupted (killed, its node lost: see ``state``), or failed or
cancelled and ``--retry-failed`` is given (its old record and handle are kept beside as ``*.prev``); a
training started again resumes from its checkpoints. Completed runs are skipped; queued and running ones
are never submitted twice, whichever process submitted them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .local import LocalExecutor
from .runs import RunSpec, RunState
from .state import JobWatcher, RunStatus, collect_states
from .store import Store

EXECUTORS = ("local", "slurm")


@dataclass
class Decision:
    """The runs ``sweep run`` will start and why the others are left alone."""

    start: list[RunSpec]
    skipped: dict[str, str]  # run id -> reason


def watchers(store: Store) -> dict[str, JobWatcher]:
    """Every executor's view of its jobs (SLURM only where its commands exist)."""
    found: dict[str, JobWatcher] = {"local": LocalExecutor(store)}
    if _has_slurm():
        from .slurm import SlurmExecutor

        found["slurm"] = SlurmExecutor(store)
    return found


def _has_slurm() -> bool:
    return any(os.access(os.path.join(d, "sacct"), os.X_OK) for d in os.environ.get("PATH", "").split(":"))


def statuses(store: Store, runs: list[RunSpec]) -> dict[str, RunStatus]:
    return collect_states(store, runs, watchers(store))


def decide(runs: list[RunSpec], states: Mapping[str, RunStatus], retry_failed: bool) -> Decision:
    """Which runs to start: new and interrupted ones, and failed/cancelled ones when retrying."""
    start, skipped = [], {}
    retryable = (RunState.FAILED, RunState.CANCELLED)
    for run in runs:
        state = states[run.run_id].state
        if state in (RunState.NEW, RunState.INTERRUPTED) or (retry_failed and state in retryable):
            start.append(run)
        else:
            skipped[run.run_id] = state.value
    return Decision(start, skipped)


def archive_previous(store: Store, runs: list[RunSpec]) -> None:
    """Move a retried run's old record and job handle aside, so its state starts over."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for run in runs:
        folder = store.run_dir(run.run_id)
        for name in ("record.json", "job.json"):
            if (folder / name).exists():
                os.replace(folder / name, folder / f"{name}.{stamp}.prev")


def run_locally(
    store: Store, runs: list[RunSpec], decision: Decision, max_parallel: int, report: Callable[[str], None]
) -> dict[str, RunState]:
    """Start the decided runs here and wait for them; evaluations wait for their trainings."""
    by_id = {run.run_id: run for run in runs}

    def state_of(run_id: str) -> RunState:
        return statuses(store, [by_id[run_id]])[run_id].state

    executor = LocalExecutor(store, max_parallel=max_parallel, report=report)
    ordered = sorted(decision.start, key=lambda run: run.stage != "train")
    return executor.run(ordered, state_of)
