"""How ``sweep run`` runs a plan on this machine: it starts each run once its training has completed, a
bounded number at a time, and stays until all have ended.

Local processes have no scheduler to hold an evaluation until its training is done or to keep runs going
without ``sweep run``, so the engine does it here, through the executor's ``submit`` and ``describe``. A
run another ``sweep run`` started first is waited for like our own. Ctrl-C stops the runs started here
(``LocalExecutor.stop``): they end interrupted and resume on the next plain ``sweep run``.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from .handle import JobHandle
from .local import LocalExecutor
from .runs import RunSpec, RunState

POLL_S = 1.0


class Interrupted(Exception):
    """Ctrl-C of ``sweep run``: the runs it had started were stopped, and will resume."""

    def __init__(self, stopped: list[RunSpec]) -> None:
        super().__init__(f"stopped {len(stopped)} runs")
        self.stopped = stopped


def drive(
    executor: LocalExecutor,
    todo: list[RunSpec],
    state_of: Callable[[str], RunState],
    claim: Callable[[list[RunSpec]], AbstractContextManager[list[RunSpec]]],
    report: Callable[[str], None],
) -> dict[str, RunState]:
    """Run ``todo`` (trainings before their evaluations), ``executor.max_parallel`` at once, and wait;
    returns the final states.

    ``state_of`` gives the current state of any run (a parent may be outside ``todo``); ``claim`` holds
    a run's lock and yields it if it is still ours to start, else another ``sweep run`` started it and
    it is waited for like our own. Ctrl-C stops the runs started here: ``Interrupted``.
    """
    pending = list(todo)
    ours: dict[str, tuple[RunSpec, JobHandle, float]] = {}
    others: dict[str, tuple[RunSpec, float]] = {}  # started by another sweep run
    done: dict[str, RunState] = {}
    total = len(todo)

    def announce_end(run: RunSpec, state: RunState, started: float) -> None:
        done[run.run_id] = state
        record = executor.store.record(run.run_id)
        summary = ""
        if record is not None and record.metrics.bbox.AP is not None:
            summary = f", box AP {record.metrics.bbox.AP:.1f} / mask AP {record.metrics.segm.AP or 0:.1f}"
        elif record is not None and record.error:
            summary = f": {record.error}"
        what = f"{state.value} {run.stage} {run.run_id} {_cell(run)}"
        report(f"[{len(done)}/{total}] {what} in {time.monotonic() - started:.0f} s{summary}")

    try:
        while pending or ours or others:
            jobs = executor.describe({run_id: handle for run_id, (_run, handle, _t) in ours.items()})
            for run_id, (run, _handle, started) in list(ours.items()):
                if not jobs[run_id].state.active:
                    del ours[run_id]
                    announce_end(run, state_of(run_id), started)
            for run_id, (run, started) in list(others.items()):
                if (state := state_of(run_id)).finished:
                    del others[run_id]
                    announce_end(run, state, started)
            for run in list(pending):
                if len(ours) >= executor.max_parallel:
                    break
                parent_state = _parent_state(run, pending, done, state_of)
                if parent_state in (RunState.FAILED, RunState.INTERRUPTED, RunState.CANCELLED):
                    pending.remove(run)
                    done[run.run_id] = RunState.NEW
                    report(f"skip {run.stage} {run.run_id} {_cell(run)}: its training {parent_state.value}")
                elif parent_state in (None, RunState.COMPLETED):
                    pending.remove(run)
                    what = f"{run.stage} {run.run_id} {_cell(run)}"
                    with claim([run]) as mine:
                        if mine:
                            ours[run.run_id] = (run, executor.submit(mine)[run.run_id], time.monotonic())
                            report(f"start {what} ({len(ours)} running)")
                        else:
                            others[run.run_id] = (run, time.monotonic())
                            report(f"wait for {what}: another sweep run started it")
            if pending or ours or others:
                time.sleep(POLL_S)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would leave them unrecorded
        by_id = {run.run_id: run for run in todo}
        raise Interrupted([by_id[run_id] for run_id in executor.stop()]) from None
    return done


def _parent_state(
    run: RunSpec, pending: list[RunSpec], done: dict[str, RunState], state_of: Callable[[str], RunState]
) -> RunState | None:
    """None for a training; else its training's state (one not yet started counts as queued: when
    retried, its old failure is only set aside as it starts)."""
    if run.parent is None:
        return None
    if any(other.run_id == run.parent for other in pending):
        return RunState.QUEUED
    state = done.get(run.parent) or state_of(run.parent)
    return RunState.QUEUED if state == RunState.NEW else state


def _cell(run: RunSpec) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in run.cell.items()) + ")" if run.cell else ""
