"""The local executor: runs a plan's DAG on this machine, a bounded number of processes at a time.

Each run is a child process ``python -m mimdet.train ...`` in its own session, with its stdout/stderr
in the run's folder and its pid in ``job.json``; an evaluation starts once its training has completed.
Because the handle is on disk, a second ``sweep run`` (or ``sweep status``) recognises runs that an
earlier, killed ``sweep run`` left running, and waits for them instead of starting them again. When a
child ends, its exit code joins the handle: killed by a signal (interrupted) is told from gave up (failed).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runs import RunSpec, RunState
from .state import JobStatus
from .store import Store

POLL_S = 1.0


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
                try:
                    os.killpg(int(handle["pid"]), signal.SIGTERM)
                except ProcessLookupError:
                    pass
            self.store.write_job(run_id, {**handle, "cancelled": True})
            cancelled += 1
        return cancelled

    def run(self, todo: list[RunSpec], state_of: Callable[[str], RunState]) -> dict[str, RunState]:
        """Run ``todo`` (trainings before their evaluations) and wait; returns the final states.

        ``state_of`` gives the current state of any run (a parent may be outside ``todo``).
        """
        pending = list(todo)
        children: dict[str, tuple[RunSpec, subprocess.Popen[bytes], float]] = {}
        done: dict[str, RunState] = {}
        total = len(todo)
        try:
            while pending or children:
                for run_id, (run, process, started) in list(children.items()):
                    if (returncode := process.poll()) is not None:
                        del children[run_id]
                        self.store.write_job(
                            run_id, {**(self.store.job(run_id) or {}), "returncode": returncode}
                        )
                        done[run_id] = state_of(run_id)
                        self._announce_end(run, done[run_id], time.monotonic() - started, len(done), total)
                for run in list(pending):
                    if len(children) >= self.max_parallel:
                        break
                    parent_state = self._parent_state(run, done, state_of)
                    if parent_state in (RunState.FAILED, RunState.INTERRUPTED, RunState.CANCELLED):
                        pending.remove(run)
                        done[run.run_id] = RunState.NEW
                        self.report(
                            f"skip {run.stage} {run.run_id} {_cell(run)}: its training {parent_state.value}"
                        )
                    elif parent_state in (None, RunState.COMPLETED):
                        pending.remove(run)
                        children[run.run_id] = (run, self._start(run), time.monotonic())
                        self.report(f"start {run.stage} {run.run_id} {_cell(run)} ({len(children)} running)")
                if pending or children:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            for run_id, (_run, process, _started) in children.items():
                os.killpg(process.pid, signal.SIGTERM)
                handle = self.store.job(run_id) or {}
                self.store.write_job(run_id, {**handle, "cancelled": True})
            raise
        return done

    def _parent_state(
        self, run: RunSpec, done: dict[str, RunState], state_of: Callable[[str], RunState]
    ) -> RunState | None:
        """None for a training; else its training's state (a training not yet started counts as queued)."""
        if run.parent is None:
            return None
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
