"""The local executor: each run a child process of ``sweep run`` on this machine.

Each run is a child process ``python -m mimdet.train ...`` in its own session, with its stdout/stderr
in the run's folder and its pid in ``job.json``. ``submit`` starts the runs it is given at once; the engine
(``drive``) chooses when, an evaluation once its training has completed, and waits for them. Because the
handle is on disk, a second ``sweep run`` (or ``sweep status``) recognises runs that an earlier, killed
``sweep run`` left running, and waits for them instead of starting them again. When a child ends, its exit
code joins the handle: killed by a signal (interrupted) is told from gave up (failed). Ctrl-C of ``sweep
run`` stops the children it started (``stop``, SIGTERM): they are interrupted, and the next plain ``sweep
run`` resumes them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from mimdet.record.atomic import not_a_plain_file
from mimdet.run.exit_codes import EXIT_INTERRUPTED

from .executor import JobStatus, NotSubmitted
from .handle import JobHandle
from .runs import RunSpec, RunState
from .store import Store

STOP_WAIT_S = 30.0  # for a run stopped by Ctrl-C to end on SIGTERM, before SIGKILL


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if fields[0] not in ("Z", "X") else None


def _alive(handle: JobHandle) -> bool:
    """Whether the handle's process lives: its pid with the start time recorded. A handle without one names
    no process (its process was gone before it was read), nor does pid 0 (to ``cancel``: sweep's own
    process group) or 1 (every process), whatever a ``job.json`` says."""
    pid, ticks = handle.pid, handle.start_ticks
    return pid is not None and pid > 1 and ticks is not None and _start_ticks(pid) == ticks


class LocalExecutor:
    """Starts runs as child processes and reports their state from their handles (and, for its own
    children, from the processes themselves)."""

    name = "local"

    def __init__(self, store: Store, max_parallel: int = 1) -> None:
        self.store = store
        self.max_parallel = max(1, max_parallel)  # processes at once: they share the cores (``_env``)
        self.host = socket.gethostname()
        self._children: dict[str, subprocess.Popen[bytes]] = {}  # started here, not seen ending yet
        self._exits: dict[str, int] = {}  # children seen ending: their exit codes

    @property
    def skipped(self) -> Mapping[str, NotSubmitted]:
        """Nothing: every run it is given starts."""
        return {}

    def submit(self, runs: list[RunSpec]) -> dict[str, JobHandle]:
        """Start each run now, as a child process; returns at once with their handles."""
        return {run.run_id: self._start(run) for run in runs}

    def describe(self, handles: Mapping[str, JobHandle]) -> dict[str, JobStatus]:
        """RUNNING while the process lives (on another host: assumed running); else how it ended.

        A child started here is asked directly; the first time it is seen ended, its exit code joins its
        handle. Any other process is recognised by its pid and start time; its exit code is in the handle
        when the ``sweep run`` that started it saw it end: a signal means the run was cut off (interrupted),
        a non-zero code that it gave up (failed). A process that ended unwatched (its ``sweep run`` was
        killed first) counts as interrupted.
        """
        found = {}
        for run_id, handle in handles.items():
            where = f"pid {handle.pid} on {handle.host}"
            if run_id in self._children or run_id in self._exits:
                returncode = self._exit_code(run_id)
                found[run_id] = (
                    JobStatus(RunState.RUNNING, where) if returncode is None else _ended(returncode)
                )
            elif handle.host != self.host:
                found[run_id] = JobStatus(RunState.RUNNING, f"{where} (another host: not checked)")
            elif _alive(handle):
                found[run_id] = JobStatus(RunState.RUNNING, where)
            else:
                found[run_id] = _ended(handle.returncode)
        return found

    def cancel(self, handles: Mapping[str, JobHandle]) -> int:
        """SIGTERM the runs' process groups; mark them cancelled."""
        jobs = self.describe(handles)
        for run_id, handle in handles.items():
            running_here = jobs[run_id].state == RunState.RUNNING and handle.host == self.host
            if running_here and handle.pid is not None:
                _signal_group(handle.pid, signal.SIGTERM)
            self.store.write_job(run_id, replace(handle, cancelled=True))
        return len(handles)

    def stop(self) -> list[str]:
        """SIGTERM the children started here and wait for them (SIGKILL after ``STOP_WAIT_S``); their run ids.

        Each ends killed by a signal, so it reads as interrupted and a plain ``sweep run`` resumes it from
        its checkpoint (where ``cancel`` would mark it cancelled, for ``--retry-failed`` only).
        """
        for process in self._children.values():
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT_S
        stopped = list(self._children)
        for run_id, process in list(self._children.items()):
            try:
                returncode = process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                returncode = process.wait()
            self._ended_with(run_id, returncode)
        return stopped

    def _exit_code(self, run_id: str) -> int | None:
        """A child's exit code once it has ended (None while it runs)."""
        if run_id in self._exits:
            return self._exits[run_id]
        returncode = self._children[run_id].poll()
        if returncode is not None:
            self._ended_with(run_id, returncode)
        return returncode

    def _ended_with(self, run_id: str, returncode: int) -> None:
        """The exit code joins the handle: killed by a signal (interrupted) is told from gave up (failed)."""
        del self._children[run_id]
        self._exits[run_id] = returncode
        if (handle := self.store.job(run_id)) is not None:
            self.store.write_job(run_id, replace(handle, returncode=returncode))

    def _start(self, run: RunSpec) -> JobHandle:
        folder = self.store.run_dir(run.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        self.store.write_spec(run)
        parent_dir = self.store.run_dir(run.parent) if run.parent else None
        for log in (folder / "stdout.log", folder / "stderr.log"):
            if kind := not_a_plain_file(log):  # a FIFO: the open below would wait forever
                raise ValueError(f"{log} is {kind}, not a file (the run's output goes there; remove it)")
        with open(folder / "stdout.log", "ab") as out, open(folder / "stderr.log", "ab") as err:
            process = subprocess.Popen(
                run.command(folder, parent_dir),
                stdout=out,
                stderr=err,
                start_new_session=True,
                env=self._env(),
            )
        self._children[run.run_id] = process
        handle = JobHandle(
            executor=self.name,
            pid=process.pid,
            host=self.host,
            start_ticks=_start_ticks(process.pid),
            submitted_at=time.time(),
        )
        self.store.write_job(run.run_id, handle)
        return handle

    def _env(self) -> dict[str, str]:
        """Share the cores between the runs at once: torch's default of one thread per core in each of
        several processes makes them all crawl."""
        threads = str(max(1, (os.cpu_count() or 1) // self.max_parallel))
        return {"OMP_NUM_THREADS": threads, **os.environ}


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
    if returncode == EXIT_INTERRUPTED:
        return JobStatus(RunState.INTERRUPTED, f"interrupted (SIGINT, exit code {returncode})")
    if returncode > 0:
        return JobStatus(RunState.FAILED, f"exited with code {returncode}")
    return JobStatus(RunState.COMPLETED)
