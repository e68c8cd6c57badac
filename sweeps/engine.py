"""What ``sweep run`` decides: which runs of a plan to start, on which executor, and what is left alone;
then it starts them (``run_sweep``), and ``sweep cancel`` stops them (``cancel``).

A run is started when it is new or was interrupted (killed, its node lost: see ``state``), or failed or
cancelled and ``--retry-failed`` is given (its old record and handle are kept beside as ``*.prev``); a
training started again resumes from its checkpoints. Completed runs are skipped; queued and running ones
are never submitted twice, whichever process submitted them.

Two ``sweep run``s of one store (a team's, on a shared file system) decide from the same files at the same
time, so deciding is not enough: each run is started under its lock (``claimed``), by whoever checks its
state again first; the other finds it started and waits for it (locally) or leaves it (SLURM).

The engine picks the executor by name. A scheduler's (SLURM) takes all the runs at once, holds each
evaluation until its training is done and keeps them going after ``sweep run`` returns; local processes
have none, so the engine starts each when its training has completed and waits for all (``drive``).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field

from filelock import Timeout

from .drive import drive
from .executor import Executor, NotSubmitted
from .handle import JobHandle
from .local import LocalExecutor
from .runs import RunSpec, RunState
from .state import RunStatus, collect_states
from .store import Store

EXECUTORS = ("local", "slurm")


@dataclass
class Decision:
    """The runs ``sweep run`` will start and why the others are left alone."""

    start: list[RunSpec]
    skipped: dict[str, str]  # run id -> reason
    seen: Mapping[str, RunStatus]  # what it was decided from: a run whose job changed since is not ours
    retry_failed: bool


@dataclass(frozen=True)
class SweepOutcome:
    """What ``sweep run`` did with the runs it decided to start."""

    ended: dict[str, RunState] = field(default_factory=dict)  # run here, waited for to their end
    submitted: dict[str, JobHandle] = field(default_factory=dict)  # left to a scheduler, running on
    left_alone: int = 0  # submitted meanwhile by another sweep run
    not_submitted: Mapping[str, NotSubmitted] = field(default_factory=dict)  # refused by the scheduler


def executor_named(name: str, store: Store, *, max_parallel: int = 1) -> Executor:
    """The executor called ``name`` ("local" | "slurm"); ``max_parallel`` is the local processes at once."""
    if name == "local":
        return LocalExecutor(store, max_parallel=max_parallel)
    if name == "slurm":
        from .slurm import SlurmExecutor  # imports submitit: only where SLURM is used

        return SlurmExecutor(store)
    raise ValueError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")


def executors(store: Store) -> dict[str, Executor]:
    """Every executor that can say where its jobs are here (SLURM only where its commands exist)."""
    return {name: executor_named(name, store) for name in EXECUTORS if name != "slurm" or _has_slurm()}


def _has_slurm() -> bool:
    return any(os.access(os.path.join(d, "sacct"), os.X_OK) for d in os.environ.get("PATH", "").split(":"))


def statuses(store: Store, runs: list[RunSpec]) -> dict[str, RunStatus]:
    return collect_states(store, runs, executors(store))


def startable(state: RunState, retry_failed: bool) -> bool:
    """New and interrupted runs start; failed and cancelled ones when retrying."""
    retryable = (RunState.FAILED, RunState.CANCELLED)
    return state in (RunState.NEW, RunState.INTERRUPTED) or (retry_failed and state in retryable)


def decide(runs: list[RunSpec], states: Mapping[str, RunStatus], retry_failed: bool) -> Decision:
    """Which runs to start, and why the others are left alone."""
    start, skipped = [], {}
    for run in runs:
        state = states[run.run_id].state
        if startable(state, retry_failed):
            start.append(run)
        else:
            skipped[run.run_id] = state.value
    return Decision(start, skipped, states, retry_failed)


@contextmanager
def claimed(
    store: Store, decision: Decision, runs: list[RunSpec], report: Callable[[str], None]
) -> Iterator[list[RunSpec]]:
    """Hold the locks of these runs and yield those still to start, their old record and handle set aside.

    Under the lock a run's state is read again: one that another ``sweep run`` started (or finished) since
    the decision, its job handle changed, is left to it. Locks are taken in one order (two sweeps never
    wait on each other) and only while runs are started or submitted, never while they run. They are
    ``flock``s: the kernel drops one when its holder dies (on NFS, the server when the holder's lease
    ends), so a killed ``sweep run`` leaves none behind; a running job is known by its handle instead.
    """
    with ExitStack() as held:
        _allow_open_files(len(runs))
        for run in sorted(runs, key=lambda run: run.run_id):
            lock = store.lock(run.run_id)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                report(f"waiting for another sweep run, which is starting {run.stage} {run.run_id}")
                lock.acquire()
            held.callback(lock.release)
        now = statuses(store, runs)
        mine = [
            run
            for run in runs
            if startable(now[run.run_id].state, decision.retry_failed)
            and now[run.run_id].handle == decision.seen[run.run_id].handle
        ]
        archive_previous(store, mine)
        yield mine


def _allow_open_files(locks: int) -> None:
    """Room for one open file per lock held (a big SLURM submission) above the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = locks + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )


def archive_previous(store: Store, runs: list[RunSpec]) -> None:
    """Move a retried run's old record and job handle aside, so its state starts over."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for run in runs:
        folder = store.run_dir(run.run_id)
        for name in ("record.json", "job.json"):
            if (folder / name).exists():
                os.replace(folder / name, folder / f"{name}.{stamp}.prev")


def run_sweep(
    store: Store,
    runs: list[RunSpec],
    decision: Decision,
    executor_name: str,
    *,
    max_parallel: int,
    report: Callable[[str], None],
) -> SweepOutcome:
    """Start the decided runs of ``runs`` (the plan) on the named executor: submitted all at once to a
    scheduler, or run here with evaluations after their trainings, waiting for all (and for those another
    sweep run started first); ``drive.Interrupted`` on Ctrl-C."""
    executor = executor_named(executor_name, store, max_parallel=max_parallel)
    if isinstance(executor, LocalExecutor):
        by_id = {run.run_id: run for run in runs}
        known = executors(store)  # once: state_of is asked for each waiting run at every poll

        def state_of(run_id: str) -> RunState:
            return collect_states(store, [by_id[run_id]], known)[run_id].state

        def claim(todo: list[RunSpec]) -> AbstractContextManager[list[RunSpec]]:
            return claimed(store, decision, todo, report)

        ordered = sorted(decision.start, key=lambda run: run.stage != "train")
        return SweepOutcome(ended=drive(executor, ordered, state_of, claim, report))
    with claimed(store, decision, decision.start, report) as mine:
        handles = executor.submit(mine)
    return SweepOutcome(
        submitted=handles,
        left_alone=len(decision.start) - len(mine),
        not_submitted=dict(executor.skipped),
    )


def cancel(store: Store, runs: list[RunSpec]) -> int:
    """Cancel the queued and running jobs of these runs, each through its executor; how many it did."""
    by_executor: dict[str, dict[str, JobHandle]] = {}
    for run_id, status in statuses(store, runs).items():
        if status.state.active and status.handle is not None:
            by_executor.setdefault(status.handle.executor, {})[run_id] = status.handle
    known = executors(store)
    return sum(known[name].cancel(handles) for name, handles in by_executor.items())
