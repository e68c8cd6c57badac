"""The local executor: runs a plan's DAG on this machine, a bounded number of processes at a time.

Each run is a child process ``python -m mimdet.train ...`` in its own session, with its stdout/stderr
in the run's folder and its pid in ``job.json``; an evaluation starts once its training has completed.
Because the handle is on disk, a second ``sweep run`` (or ``sweep status``) recognises runs that an
earlier, killed ``sweep run`` left running, and waits for them instead of starting them again. When a
child ends, its exit code joins the handle: killed by a signal (interrupted) is told from gave up (failed).
Ctrl-C of ``sweep run`` stops the children it started that way (SIGTERM): they are interrupted, and the
next plain ``sweep run`` resumes them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from .runs import RunSpec, RunState
from .state import JobStatus
from .store import Store

POLL_S = 1.0
STOP_WAIT_S = 30.0  # for a run stopped by Ctrl-C to end on SIGTERM, before SIGKILL


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] not in ("Z", "X") else None


class LocalExecutor:
    """Starts runs as child processes and reports their state from their pid files."""

    name = "local"

    def __init__(self, store: Store, max_parallel: int = 1, report: Callable[[str], None] = print) -> None:
        self.store = store
        self.max_parallel = max(1, max_parallel)
        self.report = report
        self.host = socket.gethostname()

    def describe(self, handles: dict[str, dict[str, Any]]) -> dict[str, JobStatus]:
        """RUNNING while the recorded process lives (on another host: assumed running); else how it ended.

        The exit code is in the handle when the ``sweep run`` that started the process saw it end: a
        signal means the run was cut off (interrupted), a non-zero code that it gave up (failed). A process
        that ended unwatched (its ``sweep run`` was killed first) counts as interrupted.
        """
        found = {}
        for run_id, handle in handles.items():
            where = f"pid {handle.get('pid')} on {handle.get('host')}"
            if handle.get("host") != self.host:
                found[run_id] = JobStatus(RunState.RUNNING, f"{where} (another host: not checked)")
            elif _start_ticks(int(handle["pid"])) == handle.get("start_ticks"):
                found[run_id] = JobStatus(RunState.RUNNING, where)
            else:
                found[run_id] = _ended(handle.get("returncode"))
        return found

    def states(self, handles: dict[str, dict[str, Any]]) -> dict[str, RunState]:
        return {run_id: job.state for run_id, job in self.describe(handles).items()}

    def cancel(self, handles: dict[str, dict[str, Any]]) -> int:
        """SIGTERM the runs' process groups; mark them cancelled."""
        cancelled = 0
        for run_id, handle in handles.items():
            if self.states({run_id: handle})[run_id] == RunState.RUNNING and handle.get("host") == self.host:
                _signal_group(int(handle["pid"]), signal.SIGTERM)
            self.store.write_job(run_id, {**handle, "cancelled": True})
            cancelled += 1
        return cancelled

    def run(
        self,
        todo: list[RunSpec],
        state_of: Callable[[str], RunState],
        claim: Callable[[list[RunSpec]], AbstractContextManager[list[RunSpec]]],
    ) -> dict[str, RunState]:
        """Run ``todo`` (trainings before their evaluations) and wait; returns the final states.

        ``state_of`` gives the current state of any run (a parent may be outside ``todo``); ``claim`` holds
        a run's lock and yields it if it is still ours to start, else another ``sweep run`` started it and
        it is waited for like our own. Ctrl-C stops the runs started here: ``Interrupted``.
        """
        pending = list(todo)
        children: dict[str, tuple[RunSpec, subprocess.Popen[bytes], float]] = {}
        others: dict[str, tuple[RunSpec, float]] = {}  # started by another sweep run
        done: dict[str, RunState] = {}
        total = len(todo)
        try:
            while pending or children or others:
                for run_id, (run, process, started) in list(children.items()):
                    if (returncode := process.poll()) is not None:
                        del children[run_id]
                        self._note_exit(run_id, returncode)
                        done[run_id] = state_of(run_id)
                        self._announce_end(run, done[run_id], time.monotonic() - started, len(done), total)
                for run_id, (run, started) in list(others.items()):
                    if (state := state_of(run_id)).finished:
                        del others[run_id]
                        done[run_id] = state
                        self._announce_end(run, state, time.monotonic() - started, len(done), total)
                for run in list(pending):
                    if len(children) >= self.max_parallel:
                        break
                    parent_state = self._parent_state(run, pending, done, state_of)
                    if parent_state in (RunState.FAILED, RunState.INTERRUPTED, RunState.CANCELLED):
                        pending.remove(run)
                        done[run.run_id] = RunState.NEW
                        self.report(
                            f"skip {run.stage} {run.run_id} {_cell(run)}: its training {parent_state.value}"
                        )
                    elif parent_state in (None, RunState.COMPLETED):
                        pending.remove(run)
                        what = f"{run.stage} {run.run_id} {_cell(run)}"
                        with claim([run]) as mine:
                            if mine:
                                children[run.run_id] = (run, self._start(run), time.monotonic())
                                self.report(f"start {what} ({len(children)} running)")
                            else:
                                others[run.run_id] = (run, time.monotonic())
                                self.report(f"wait for {what}: another sweep run started it")
                if pending or children or others:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            raise Interrupted(self._stop(children)) from None
        return done

    def _stop(self, children: dict[str, tuple[RunSpec, subprocess.Popen[bytes], float]]) -> list[RunSpec]:
        """SIGTERM the runs started here and wait for them (SIGKILL after ``STOP_WAIT_S``): each ends killed
        by a signal, so it reads as interrupted and a plain ``sweep run`` resumes it from its checkpoint."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C would leave them unrecorded
        for _run, process, _started in children.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        for run_id, (_run, process, _started) in children.items():
            try:
                returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                returncode = process.wait()
            self._note_exit(run_id, returncode)
        return [run for run, _process, _started in children.values()]

    def _note_exit(self, run_id: str, returncode: int) -> None:
        """The exit code joins the handle: killed by a signal (interrupted) is told from gave up (failed)."""
        self.store.write_job(run_id, {**(self.store.job(run_id) or {}), "returncode": returncode})

    def _parent_state(
        self,
        run: RunSpec,
        pending: list[RunSpec],
        done: dict[str, RunState],
        state_of: Callable[[str], RunState],
    ) -> RunState | None:
        """None for a training; else its training's state (one not yet started counts as queued: when
        retried, its old failure is only set aside as it starts)."""
        if run.parent is None:
            return None
        if any(other.run_id == run.parent for other in pending):
            return RunState.QUEUED
        state = done.get(run.parent) or state_of(run.parent)
        return RunState.QUEUED if state == RunState.NEW else state

    def _start(self, run: RunSpec) -> subprocess.Popen[bytes]:
        folder = self.store.run_dir(run.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.store.write_spec(run)
        parent_dir = self.store.run_dir(run.parent) if run.parent else None
        with open(folder / "stdout.log", "ab") as out, open(folder / "stderr.log", "ab") as err:
            process = subprocess.Popen(
                run.command(folder, parent_dir),
                stdout=out,
                stderr=err,
                start_new_session=True,
                env=self._env(),
            )
        self.store.write_job(
            run.run_id,
            {
                "executor": self.name,
                "pid": process.pid,
                "host": self.host,
                "start_ticks": _start_ticks(process.pid),
                "submitted_at": time.time(),
            },
        )
        return process

    def _env(self) -> dict[str, str]:
        """Share the cores between the runs at once: torch's default of one thread per core in each of
        several processes makes them all crawl."""
        threads = str(max(1, (os.cpu_count() or 1) // self.max_parallel))
        return {"OMP_NUM_THREADS": threads, **os.environ}

    def _announce_end(self, run: RunSpec, state: RunState, seconds: float, finished: int, total: int) -> None:
        record = self.store.record(run.run_id)
        summary = ""
        if record is not None and record.metrics.bbox.AP is not None:
            summary = f", box AP {record.metrics.bbox.AP:.1f} / mask AP {record.metrics.segm.AP or 0:.1f}"
        elif record is not None and record.error:
            summary = f": {record.error}"
        what = f"{state.value} {run.stage} {run.run_id} {_cell(run)}"
        self.report(f"[{finished}/{total}] {what} in {seconds:.0f} s{summary}")


class Interrupted(Exception):
    """Ctrl-C of ``sweep run``: the runs it had started were stopped, and will resume."""

    def __init__(self, stopped: list[RunSpec]) -> None:
        super().__init__(f"stopped {len(stopped)} runs")
        self.stopped = stopped


def _signal_group(pid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:  # it ended meanwhile
        pass


def _ended(returncode: int | None) -> JobStatus:
    """The state of a process that has ended, from its exit code (None: nobody saw it end)."""
    if returncode is None:
        return JobStatus(RunState.INTERRUPTED, "ended while no sweep run watched it")
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else "?"
        return JobStatus(RunState.INTERRUPTED, f"killed by signal {-returncode} ({name})")
    if returncode > 0:
        return JobStatus(RunState.FAILED, f"exited with code {returncode}")
    return JobStatus(RunState.COMPLETED)


def _cell(run: RunSpec) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in run.cell.items()) + ")" if run.cell else ""
