"""The state of every run of a plan, read from the store and asked of the executors that hold its jobs.

Order of evidence: a readable ``record.json`` decides (completed or failed, as the run wrote it), unless a
failed run's job is queued or running again (requeued after a preemption or a lost node) or was cancelled
(a training fails as a cancel stops it, on its killed DataLoader workers: the cancel is what happened, as
the scheduler's accounting says); else the job handle: none means new, a cancelled mark means cancelled,
else the executor reports the job — queued or running, or ended without a record: *failed* when the run
itself gave up (a non-zero exit, out of memory), *interrupted* when something outside cut it off (killed
by a signal or a Ctrl-C, its node lost, its time limit reached for good). A plain ``sweep run`` starts
interrupted runs again (a training resumes from its last checkpoint); failed ones wait for
``--retry-failed``.

A record whose stage, variant or data differ from what its run's config and overrides make (edited by
hand) is no result of that run: the run is failed with what differs (``RunStatus.mismatch``, which
``sweep table`` and ``collect`` also say), rather than its row filling another cell, or none, unsaid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace

from mimdet.record.atomic import file_in_the_way
from mimdet.record.schema import Variant
from mimdet.run.resolve import RunFactsError

from .config_cache import variant_columns
from .executor import Executor, JobStatus
from .handle import JobHandle
from .record_rows import Row, rows_of
from .runs import RunSpec, RunState
from .store import Store


@dataclass(frozen=True)
class RunStatus:
    run: RunSpec
    state: RunState
    detail: str = ""  # the error of a failed run, where its job is, ...
    row: Row | None = None  # the record as a table row, as read to decide the state: callers need not read it
    # job.json as read (who started it); not read, None, for a completed run: nothing will start it again
    handle: JobHandle | None = field(default=None, compare=False)
    mismatch: str = ""  # how its record differs from the run (then failed, the record not its result)


def collect_states(
    store: Store, runs: Iterable[RunSpec], executors: Mapping[str, Executor]
) -> dict[str, RunStatus]:
    """RunStatus of each run, with one query per executor for all runs without a record."""
    statuses: dict[str, RunStatus] = {}
    live: dict[str, dict[str, JobHandle]] = {}
    by_id: dict[str, RunSpec] = {}
    failed: dict[str, RunStatus] = {}  # failed records of runs whose job may have been requeued since
    handles: dict[str, JobHandle | None] = {}
    rows = rows_of(store.root)
    for run in runs:
        by_id[run.run_id] = run
        row, unreadable = rows.load(run.run_id)
        mismatch = record_mismatch(run, row) if row is not None else ""
        if mismatch:
            row, unreadable = None, f"record.json does not match its run: {mismatch}"
        if row is not None and row["status"] == "completed":  # decided: its job.json is not read
            statuses[run.run_id] = RunStatus(run, RunState.COMPLETED, "", row)
            handles[run.run_id] = None
            continue
        handle = handles[run.run_id] = store.job(run.run_id)
        if unreadable:  # kept: --retry-failed
            statuses[run.run_id] = RunStatus(run, RunState.FAILED, unreadable, mismatch=mismatch)
        elif row is not None:  # failed
            statuses[run.run_id] = RunStatus(run, RunState.FAILED, row["error"] or "", row)
            if handle is not None and handle.cancelled:
                statuses[run.run_id] = RunStatus(run, RunState.CANCELLED, "cancelled", row)
            elif handle is not None:
                failed[run.run_id] = statuses[run.run_id]
                live.setdefault(handle.executor, {})[run.run_id] = handle
        elif handle is None:  # new; a file where its folder should be is said: sweep run stops on it
            in_the_way = file_in_the_way(store.run_dir(run.run_id), shown_from=store.root)
            statuses[run.run_id] = RunStatus(run, RunState.NEW, in_the_way or "")
        elif handle.cancelled:
            statuses[run.run_id] = RunStatus(run, RunState.CANCELLED, "cancelled")
        else:
            live.setdefault(handle.executor, {})[run.run_id] = handle
    for executor, jobs in live.items():
        known = executors.get(executor)
        found = known.describe(jobs) if known else {}
        unknown = JobStatus(RunState.INTERRUPTED, f"its {executor} executor is not available here")
        for run_id in jobs:
            job = found.get(run_id, unknown)
            if run_id in failed:  # a requeued job (preempted, node lost) runs again despite the record
                earlier = failed[run_id]
                if job.state.active:
                    detail = f"{job.detail}; earlier: {earlier.detail}"
                    statuses[run_id] = RunStatus(by_id[run_id], job.state, detail, earlier.row)
                elif job.state == RunState.CANCELLED:
                    statuses[run_id] = RunStatus(by_id[run_id], job.state, job.detail, earlier.row)
                continue
            state = RunState.FAILED if job.state == RunState.COMPLETED else job.state  # ended, no record
            detail = job.detail if state.active else _ended_detail(store, run_id, state, job.detail)
            statuses[run_id] = RunStatus(by_id[run_id], state, detail)
    return {run_id: replace(status, handle=handles[run_id]) for run_id, status in statuses.items()}


CHECKED_FIELDS = {  # row column -> the record's field, as a mismatch names it
    "stage": "stage",
    **{item.name: f"variant.{item.name}" for item in fields(Variant)},
    "dataset_train": "dataset.train",
    "dataset_test": "dataset.test",
}


def record_mismatch(run: RunSpec, row: Row) -> str:
    """Where a record's row differs from its run (``variant.train_sample_ratio: expected 0.5, found 0.25``,
    each field so), '' where it does not or the run's config says nothing to compare (``RunFactsError``)."""
    try:
        expected = {"stage": run.stage, **variant_columns(run.config_file, run.overrides)}
    except RunFactsError:
        return ""
    return "; ".join(
        f"{name}: expected {expected[column]!r}, found {row.get(column)!r}"
        for column, name in CHECKED_FIELDS.items()
        if row.get(column) != expected[column]
    )


def _ended_detail(store: Store, run_id: str, state: RunState, how: str) -> str:
    """How the job ended, and the last line of its log, which usually says why."""
    if state == RunState.CANCELLED:
        return how or "cancelled"
    summary = "; ".join(part for part in (how, "no record") if part)
    tail = store.log_tail(run_id, lines=1)
    return f"{summary}: {tail}" if tail else summary
