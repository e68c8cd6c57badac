"""The state of every run of a plan, read from the store and asked of the executors that hold its jobs.

Order of evidence: a readable ``record.json`` decides (completed or failed, as the run wrote it); else the
job handle: none means new, a cancelled mark means cancelled, else the executor says queued or running —
and a job that ended without writing a record failed (its log tail says why).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .runs import RunSpec, RunState
from .store import Store


class JobWatcher(Protocol):
    """What the state needs of an executor: the live state of its jobs, by run id."""

    def states(self, handles: dict[str, dict[str, Any]]) -> dict[str, RunState]: ...


@dataclass(frozen=True)
class RunStatus:
    run: RunSpec
    state: RunState
    detail: str = ""  # the error of a failed run, where its job is, ...


def collect_states(
    store: Store, runs: Iterable[RunSpec], watchers: Mapping[str, JobWatcher]
) -> dict[str, RunStatus]:
    """RunStatus of each run, with one query per executor for all runs without a record."""
    statuses: dict[str, RunStatus] = {}
    live: dict[str, dict[str, dict[str, Any]]] = {}
    by_id: dict[str, RunSpec] = {}
    for run in runs:
        by_id[run.run_id] = run
        record = store.record(run.run_id)
        if record is not None:
            state = RunState.COMPLETED if record.status == "completed" else RunState.FAILED
            statuses[run.run_id] = RunStatus(run, state, record.error or "")
            continue
        handle = store.job(run.run_id)
        if handle is None:
            statuses[run.run_id] = RunStatus(run, RunState.NEW)
        elif handle.get("cancelled"):
            statuses[run.run_id] = RunStatus(run, RunState.CANCELLED, "cancelled")
        else:
            live.setdefault(str(handle.get("executor")), {})[run.run_id] = handle
    for executor, handles in live.items():
        watcher = watchers.get(executor)
        found = watcher.states(handles) if watcher else {}
        for run_id, handle in handles.items():
            state = found.get(run_id, RunState.FAILED)
            if state == RunState.COMPLETED:  # the job ended but wrote no record
                state = RunState.FAILED
            detail = _where(handle) if state.active else _ended_detail(store, run_id, state)
            statuses[run_id] = RunStatus(by_id[run_id], state, detail)
    return statuses


def _where(handle: dict[str, Any]) -> str:
    if handle.get("executor") == "slurm":
        return f"slurm job {handle.get('job_id')}"
    return f"pid {handle.get('pid')} on {handle.get('host')}"


def _ended_detail(store: Store, run_id: str, state: RunState) -> str:
    if state == RunState.CANCELLED:
        return "cancelled"
    tail = store.log_tail(run_id, lines=1)
    return f"job ended without a record: {tail}" if tail else "job ended without a record"
