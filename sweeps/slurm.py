"""The SLURM executor: a sweep's runs as submitit jobs, one job array per stage and resources.

``submit`` sends the trainings with equal resources as one array, then the evaluations of each training
as one array that waits for it (``afterok``; ``--kill-on-invalid-dep`` cancels them if it fails). An
evaluation whose training already failed, was cancelled or was not submitted is left out (``skipped``).
``describe`` asks sacct once for all jobs and squeue once for those the controller holds (why they
wait); ``cancel`` scancels the live ones. Each asks ``scontrol ping`` first: with slurmctld down,
accounting still answers with states that may no longer hold, and squeue takes 10-20 s to fail, so that
is said at once instead.
Every job is submitted ``--requeue``: one whose node is lost starts again.

Files. Each job's submitit folder (its pickles and logs) is its run's ``runs/<id>/slurm/``. submitit
names a job's folder by a template holding the job id (``<root>/slurm/<batch>/%j``), and array task ids
are only known once sbatch answers; so a batch is submitted held, the files submitit wrote for each job
``A_i`` are moved into its run's folder, ``<root>/slurm/<batch>/A_i`` becomes a link to that folder
(where the job, and a requeued job, looks), and the batch is released.

No duplicates. The caller submits only runs with no live job (it asks ``states``); this module checks
again, from the runs' folders and one ``squeue --me``:

1. a run whose ``slurm/`` holds a job (``<job id>_submitted.pkl``) that squeue still lists is not
   submitted again, its handle is written back (e.g. a training being requeued);
2. a ``submitting`` marker is written in each run's folder just before sbatch and removed once the run's
   handle is in ``job.json``. It names the batch's job (``mimdet-<run id>``, or ``mimdet-<stage>-<batch>``
   for an array, with the run's index in it). A run that still has one was being submitted by a
   ``sweep run`` that died: its job is looked up by that name (squeue, then sacct); if found, that
   submission is finished (files moved, job released, handle written) instead of submitting again.

SLURM refusals (QOS limits, a busy controller) are retried with exponential backoff; a batch still
refused is left out (``skipped``, its markers kept) for the next ``sweep run``, and the others go on. A
refusal no retry can change (``REFUSED_FOR_GOOD``: a partition, account or qos the cluster does not have)
is not retried: it is left out at once, ``for_good``, naming the spec's key.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import submitit
from submitit.core.utils import FailedJobError
from submitit.slurm.slurm import read_job_id

from mimdet.run.exit_codes import EXIT_INTERRUPTED

from .executor import ExecutorUnavailable, JobStatus, NotSubmitted
from .handle import JobHandle
from .job import TrainJob
from .runs import Resources, RunSpec, RunState, Stage
from .store import Store, read_json, write_json_atomic

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIGNAL_DELAY_S = 120  # USR2 this long before the time limit: Slurm may send it up to 60 s early, and the
# handler gets control only between two iterations; it then just requeues (checkpoints are already on disk)
MAX_NUM_TIMEOUT = 10  # requeues after hitting the time limit (preemptions do not count)
SLURM_TRIES = 6
FIRST_RETRY_S = 2.0
MAX_RETRY_S = 60.0
SLURM_ERRORS = (subprocess.CalledProcessError, subprocess.TimeoutExpired, FailedJobError)
MARKER = "submitting"
# sbatch's refusals that no retry changes (SLURM's own words, its slurm_errno.c), and the resources keys
# of the spec that ask for what the cluster does not have
REFUSED_FOR_GOOD: dict[str, tuple[str, ...]] = {
    "Invalid partition name specified": ("partition",),
    "User's group not permitted to use this partition": ("partition",),
    "Invalid account or account/partition combination specified": ("account", "partition"),
    "Invalid qos specification": ("qos",),
    "Invalid feature specification": ("constraint",),
    "Invalid generic resource (gres) specification": ("gpus_per_node", "sbatch_extra"),
    "Requested node configuration is not available": ("nodes", "gpus_per_node", "cpus_per_task", "mem_gb"),
    "Requested time limit is invalid (missing or exceeds some limit)": ("time_min",),
    "Invalid license specification": ("sbatch_extra",),
    "Requested reservation is invalid": ("sbatch_extra",),
}
# a FAILED job that a Ctrl-C ended (``scancel --signal=INT``): mimdet.train exits 130 on it, as it does
# locally, and a task the SIGINT reached before mimdet.train ran dies of it; exit codes as ``code:signal``
SIGINT_EXITS = (f"{EXIT_INTERRUPTED}:0", f"0:{signal.SIGINT.value}")
ENDED_BY_SIGINT = "FAILED (SIGINT)"  # such a job's state here: not SLURM's word for it, which is FAILED
# an evaluation the controller cancelled because its training ended without completing (afterok can no
# longer be met): it never started, and the next run of its training brings it again
TRAINING_DID_NOT_COMPLETE = "CANCELLED (its training did not complete)"
# a waiting job the controller lists as cancelled, still waiting on its dependency: a user's scancel or the
# controller's own, which only accounting tells apart ("CANCELLED by UID" or bare); until it does, waiting
CANCELLED_BY_WHOM = "CANCELLED (by whom, accounting has yet to say)"
# sacct/squeue states -> run states; any other (FAILED, OUT_OF_MEMORY, ...) means the job gave up
JOB_STATES = {
    **dict.fromkeys(
        ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED"), RunState.QUEUED
    ),
    **dict.fromkeys(("RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT"), RunState.RUNNING),
    "COMPLETED": RunState.COMPLETED,  # the run's record tells completed from failed
    "CANCELLED": RunState.CANCELLED,
    # cut off by the cluster, not by the run: a re-run resumes from the checkpoints
    **dict.fromkeys(("NODE_FAIL", "PREEMPTED", "TIMEOUT", "BOOT_FAIL", "DEADLINE"), RunState.INTERRUPTED),
    ENDED_BY_SIGINT: RunState.INTERRUPTED,  # a Ctrl-C cut the run off: a re-run resumes it
    TRAINING_DID_NOT_COMPLETE: RunState.INTERRUPTED,  # a re-run starts it with its training, if that runs
    CANCELLED_BY_WHOM: RunState.QUEUED,
}


def launcher_settings(resources: Resources, stage: Stage) -> dict[str, Any]:
    """submitit's ``AutoExecutor`` settings for a run's resources: the one place they are converted."""
    settings: dict[str, Any] = {
        "name": f"mimdet-{stage}",
        "nodes": resources.nodes,
        "tasks_per_node": resources.gpus_per_node or 1,  # one process per GPU (see sweeps.job)
        "cpus_per_task": resources.cpus_per_task,
        "timeout_min": resources.time_min,
        # a quarter of the time limit at most, or a short job would be signalled as it starts
        "slurm_signal_delay_s": min(SIGNAL_DELAY_S, resources.time_min * 15),
        "slurm_max_num_timeout": MAX_NUM_TIMEOUT,
        "slurm_array_parallelism": resources.max_in_flight,
        "slurm_additional_parameters": dict(resources.sbatch_extra),
    }
    optional = {
        "gpus_per_node": resources.gpus_per_node or None,
        "mem_gb": resources.mem_gb,
        "slurm_partition": resources.partition,
        "slurm_account": resources.account,
        "slurm_qos": resources.qos,
        "slurm_constraint": resources.constraint,
    }
    settings.update({key: value for key, value in optional.items() if value is not None})
    return settings


def batch_settings(resources: Resources, stage: Stage, *, name: str, dependency: str) -> dict[str, Any]:
    """A batch's settings: its resources', its job name, submitted held, after ``dependency`` if any."""
    settings = launcher_settings(resources, stage)
    # --requeue: a job whose node is lost starts again (and resumes) wherever the cluster's default is not to
    extra = {**settings["slurm_additional_parameters"], "hold": True, "requeue": True}
    if dependency:
        extra.update({"dependency": dependency, "kill-on-invalid-dep": "yes"})
    return {**settings, "name": name, "slurm_additional_parameters": extra}


def submitit_executor(folder: Path | str, settings: dict[str, Any]) -> submitit.AutoExecutor:
    """A SLURM executor with these settings (``slurm_max_num_timeout`` is a constructor argument)."""
    settings = dict(settings)
    executor = submitit.AutoExecutor(
        folder, cluster="slurm", slurm_max_num_timeout=settings.pop("slurm_max_num_timeout")
    )
    executor.update_parameters(**settings)
    return executor


class SlurmExecutor:
    """Submits runs as SLURM jobs and reads their states; every fact lives in the store or in SLURM."""

    name = "slurm"

    def __init__(self, store: Store, *, poll_s: float = 30.0) -> None:
        self.store = store
        self.poll_s = poll_s  # between two sacct queries in ``wait`` (sacct asks the accounting database)
        self.skipped: dict[str, NotSubmitted] = {}  # runs the last ``submit`` left out, and why

    # ------------------------------------------------------------------ submit
    def submit(self, runs: list[RunSpec]) -> dict[str, JobHandle]:
        """Submit these runs (the caller chose them); returns the handles of those now in SLURM."""
        self.skipped = {}
        _ping_controller()
        handles = self._already_submitted(runs)
        todo = [run for run in runs if run.run_id not in handles]
        for batch in _grouped([run for run in todo if run.stage == "train"], _key):
            handles.update(self._submit_batch(batch, dependency=""))
        evaluations = [run for run in todo if run.stage == "eval"]
        after = self._dependencies(evaluations)
        ready = [run for run in evaluations if run.run_id in after]
        for batch in _grouped(ready, lambda run: (after[run.run_id], _key(run))):
            handles.update(self._submit_batch(batch, dependency=after[batch[0].run_id]))
        return handles

    def _already_submitted(self, runs: list[RunSpec]) -> dict[str, JobHandle]:
        """Handles of runs that have a live job, or a job a killed ``sweep run`` submitted (module doc)."""
        live = _live_jobs()
        handles: dict[str, JobHandle] = {}
        marked: dict[str, tuple[RunSpec, dict[str, Any]]] = {}
        for run in runs:
            folder = self.store.run_dir(run.run_id)
            if (marker := _submission_marker(read_json(folder / MARKER))) is not None:
                marked[run.run_id] = (run, marker)
                continue
            submitted = [
                path.name.removesuffix("_submitted.pkl") for path in folder.glob("slurm/*_submitted.pkl")
            ]
            if job_id := next((job_id for job_id in submitted if job_id in live), None):
                logger.info("run %s is in SLURM already, as job %s", run.run_id, job_id)
                handle = self.store.job(run.run_id)
                if handle is None or handle.job_id != job_id:  # e.g. moved aside for a retry
                    handle = self._write_handle(run, job_id)
                handles[run.run_id] = handle
        if not marked:
            return handles
        since = min(float(marker["written_at"]) for _run, marker in marked.values())
        named = _jobs_named({marker["job_name"] for _run, marker in marked.values()}, live, since)
        for run, marker in marked.values():
            base = named.get(marker["job_name"])
            if base is None:  # sbatch never took it: submit it afresh
                (self.store.run_dir(run.run_id) / MARKER).unlink()
                continue
            job_id = base if marker["index"] is None else f"{base}_{marker['index']}"
            logger.warning(
                "run %s: finishing the submission of job %s (a sweep run died)", run.run_id, job_id
            )
            batch_folder = Path(marker["batch_folder"])
            handles.update(self._finish([run], [job_id], batch_folder, release=job_id in live))
        return handles

    def _dependencies(self, evaluations: list[RunSpec]) -> dict[str, str]:
        """Each evaluation's dependency ('' when its training has completed); the others are skipped."""
        parents = {run.parent for run in evaluations if run.parent}
        jobs = {
            parent: handle
            for parent in parents
            if (handle := self.store.job(parent)) is not None and handle.executor == self.name
        }
        states = self.states(jobs)
        after: dict[str, str] = {}
        for run in evaluations:
            if run.parent is None:  # a checkpoint trained elsewhere: nothing to wait for
                after[run.run_id] = ""
                continue
            parent = run.parent
            state = states.get(parent)
            if state is not None and state.active:
                after[run.run_id] = f"afterok:{jobs[parent].job_id}"
                continue
            record = self.store.record(parent)  # read after the job's state: a job writes it before it ends
            if record is not None and record.status == "completed":
                after[run.run_id] = ""
                continue
            why = record.status if record else (state.value if state else "not submitted")
            refused = self.skipped.get(parent)  # refused for good: so is its evaluation, as the spec stands
            self._skip(run, f"its training {parent} is {why}", for_good=bool(refused and refused.for_good))
        return after

    def _submit_batch(self, runs: list[RunSpec], dependency: str) -> dict[str, JobHandle]:
        """One sbatch for these runs (an array if more than one), held until their files are in place."""
        first = runs[0]
        batch = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        name = f"mimdet-{first.run_id}" if len(runs) == 1 else f"mimdet-{first.stage}-{batch}"
        folder = self.store.root / "slurm" / batch
        settings = batch_settings(first.resources, first.stage, name=name, dependency=dependency)
        executor = submitit_executor(folder / "%j", settings)
        argvs = []
        for index, run in enumerate(runs):
            run_dir = self.store.run_dir(run.run_id)
            self.store.write_spec(run)
            marker = {
                "job_name": name,
                "index": index if len(runs) > 1 else None,
                "batch_folder": str(folder),
                "written_at": time.time(),
            }
            write_json_atomic(run_dir / MARKER, marker)
            argvs.append(run.train_argv(run_dir, self.store.run_dir(run.parent) if run.parent else None))

        def sbatch() -> list[str]:
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's errors; we say why
                    return [job.job_id for job in executor.map_array(TrainJob(), argvs)]
            except FailedJobError:
                _cancel_named(name)  # a timed-out sbatch may have queued it anyway, without its pickles
                raise

        try:
            job_ids = _retrying(f"sbatch {name}", sbatch)
        except SLURM_ERRORS as error:
            refusal = _refused_for_good(error, first)
            for run in runs:
                self._skip(
                    run,
                    refusal or f"sbatch refused it {SLURM_TRIES} times: {_why(error)}",
                    for_good=refusal is not None,
                )
            return {}
        return self._finish(runs, job_ids, folder, release=True)

    def _finish(
        self, runs: list[RunSpec], job_ids: list[str], batch_folder: Path, *, release: bool
    ) -> dict[str, JobHandle]:
        """Move each held job's files into its run's folder, release the jobs, write the handles."""
        for run, job_id in zip(runs, job_ids, strict=True):
            _adopt(batch_folder / job_id, self.store.run_dir(run.run_id) / "slurm")
        if release:
            ids = ",".join(sorted({job_id.split("_")[0] for job_id in job_ids}))
            try:
                _retrying("scontrol release", lambda: _slurm(["scontrol", "release", ids]))
            except SLURM_ERRORS as error:
                self._give_up_held(runs, ids, _why(error))
                return {}
        handles = {}
        for run, job_id in zip(runs, job_ids, strict=True):
            handles[run.run_id] = self._write_handle(run, job_id)
            (self.store.run_dir(run.run_id) / MARKER).unlink(missing_ok=True)
        return handles

    def _give_up_held(self, runs: list[RunSpec], ids: str, why: str) -> None:
        """Jobs SLURM would not release (resources no node of the partition has: sbatch refuses those at
        once, but takes them held) are cancelled, so that none waits in the queue forever, and their runs
        stay new; if the cancel fails too (the controller is away), their markers stay and the next submit
        releases them."""
        try:
            _slurm(["scancel", ids])
        except SLURM_ERRORS:
            for run in runs:
                self._skip(run, f"job {ids} submitted but still held: {why}")
            return
        for run in runs:
            (self.store.run_dir(run.run_id) / MARKER).unlink(missing_ok=True)
            self._skip(run, f"SLURM would not release job {ids} ({why}), so it was cancelled")

    def _write_handle(self, run: RunSpec, job_id: str) -> JobHandle:
        handle = JobHandle(
            executor=self.name,
            job_id=job_id,
            folder=str(self.store.run_dir(run.run_id) / "slurm"),
            submitted_at=time.time(),
        )
        self.store.write_job(run.run_id, handle)
        return handle

    def _skip(self, run: RunSpec, why: str, *, for_good: bool = False) -> None:
        """Leave the run out of this submission; the caller (``sweep run``) says why."""
        self.skipped[run.run_id] = NotSubmitted(why, for_good)

    # ------------------------------------------------------------------ follow
    def describe(self, handles: Mapping[str, JobHandle]) -> dict[str, JobStatus]:
        """Each run's job: one sacct for all jobs (every start of each), one squeue for the controller's.

        squeue decides the state of live jobs (accounting lags starts and requeues) and says why one waits;
        accounting, that of ended ones and their earlier starts, which the detail names (``restart 1 after
        NODE_FAIL``), except a job that ended so recently that only the controller knows it (a waiting job
        cancelled with the one it depends on may leave the queue before accounting hears of it at all). A
        job neither knows has vanished without accounting: interrupted (the caller reads records first).
        """
        job_ids = {run_id: str(handle.job_id) for run_id, handle in handles.items()}
        if not job_ids:
            return {}
        bases = sorted({job_id.split("_")[0] for job_id in job_ids.values()})
        _ping_controller()  # accounting answers without it, with states that may no longer be true
        starts = _sacct_starts(bases)
        known = _squeue_jobs(bases)
        found = {}
        for run_id, job_id in job_ids.items():
            history = starts.get(job_id, [])
            if job_id in known:  # the controller is fresher: accounting may lag a start, requeue or end
                history = _with_controller_state(history, known[job_id][0])
            if not history:
                logger.warning("run %s: job %s is unknown to sacct and squeue", run_id, job_id)
                found[run_id] = JobStatus(RunState.INTERRUPTED, f"slurm job {job_id} is unknown to SLURM")
                continue
            current = history[-1]
            state = JOB_STATES.get(current, RunState.FAILED)
            reason = known.get(job_id, ("", ""))[1] if state == RunState.QUEUED else ""
            detail = f"slurm job {job_id} {current}"
            if len(history) > 1:
                detail += f", restart {len(history) - 1} after {' '.join(history[:-1])}"
            if reason not in ("", "None"):
                detail += f": {reason}"
            found[run_id] = JobStatus(state, detail)
        return found

    def states(self, handles: Mapping[str, JobHandle]) -> dict[str, RunState]:
        return {run_id: job.state for run_id, job in self.describe(handles).items()}

    def wait(self, handles: Mapping[str, JobHandle], timeout_s: float) -> dict[str, RunState]:
        """The states once no job is queued or running, polling every ``poll_s``; TimeoutError after that."""
        deadline = time.monotonic() + timeout_s
        while True:
            states = self.states(handles)
            active = sorted(run_id for run_id, state in states.items() if state.active)
            if not active:
                return states
            if time.monotonic() > deadline:
                raise TimeoutError(f"after {timeout_s:.0f} s, runs still queued or running: {active}")
            time.sleep(self.poll_s)

    def cancel(self, handles: Mapping[str, JobHandle]) -> int:
        """scancel the runs' live jobs in one call and mark them cancelled; returns how many."""
        states = self.states(handles)
        live = {run_id: handle for run_id, handle in handles.items() if states[run_id].active}
        if live:
            _ask("scancel", ["scancel", *(str(handle.job_id) for handle in live.values())])
            for run_id, handle in live.items():
                self.store.write_job(run_id, replace(handle, cancelled=True))
        return len(live)


# ---------------------------------------------------------------------- helpers
def _key(run: RunSpec) -> str:
    """Runs with equal resources share a batch (``Resources`` holds a dict, so it is not hashable)."""
    return json.dumps(asdict(run.resources), sort_keys=True)


def _submission_marker(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """A submission marker as ``_submit_batch`` writes it, else None: one with a field missing or of another
    type reads as none, as an unreadable one does (the run's live jobs are still found by their files)."""
    if data is None:
        return None
    index = data.get("index")
    fits = (
        isinstance(data.get("job_name"), str)
        and isinstance(data.get("batch_folder"), str)
        and type(data.get("written_at")) in (int, float)
        and (index is None or type(index) is int)
    )
    return data if fits else None


def _grouped(runs: Iterable[RunSpec], key: Callable[[RunSpec], Hashable]) -> list[list[RunSpec]]:
    groups: dict[Hashable, list[RunSpec]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return list(groups.values())


def _adopt(job_folder: Path, target: Path) -> None:
    """Move the files submitit wrote for a held job into its run's folder; leave a link in their place."""
    if job_folder.is_symlink():  # done by an earlier submit that died later
        return
    target.mkdir(parents=True, exist_ok=True)
    if job_folder.is_dir():
        for path in list(job_folder.iterdir()):
            os.replace(path, target / path.name)
        job_folder.rmdir()
    job_folder.symlink_to(os.path.relpath(target, job_folder.parent), target_is_directory=True)


def _slurm(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def _retrying(what: str, action: Callable[[], T]) -> T:
    """``action()``, retried with exponential backoff while SLURM refuses (QOS limits, busy controller)."""
    delay = FIRST_RETRY_S
    attempt = 1
    while True:
        try:
            return action()
        except SLURM_ERRORS as error:
            if attempt == SLURM_TRIES or _refusal_for_good(error) is not None:
                raise
            logger.warning(
                "%s refused (try %d of %d): %s; again in %.1f s",
                what,
                attempt,
                SLURM_TRIES,
                _why(error),
                delay,
            )
        time.sleep(delay)
        delay = min(2 * delay, MAX_RETRY_S)
        attempt += 1


def _ask(what: str, command: list[str]) -> str:
    """``command``'s output, retried while SLURM refuses; ``ExecutorUnavailable`` once it gives up."""
    try:
        return _retrying(what, lambda: _slurm(command))
    except SLURM_ERRORS as error:
        raise ExecutorUnavailable(f"SLURM does not answer ({what}: {_why(error)})") from None


def _refusal_for_good(error: Exception) -> str | None:
    """The refusal of ``REFUSED_FOR_GOOD`` that SLURM's error says, or None (one a retry may change)."""
    text = str(getattr(error, "stderr", None) or error)
    return next((refusal for refusal in REFUSED_FOR_GOOD if refusal in text), None)


def _refused_for_good(error: Exception, run: RunSpec) -> str | None:
    """Why sbatch will never take ``run`` as its spec stands, naming the spec's keys and, for a partition,
    the partitions there are; None for a refusal a retry may change."""
    refusal = _refusal_for_good(error)
    if refusal is None:
        return None
    keys = REFUSED_FOR_GOOD[refusal]
    asked = ", ".join(
        f"{run.stage}.resources.{key} {value!r}"
        for key in keys
        if (value := getattr(run.resources, key)) not in (None, {})
    )
    where = f" ({_partitions()})" if keys[0] == "partition" else ""
    return f"sbatch refuses {asked or f'{run.stage}.resources'} for good: {refusal}{where}; not retried"


def _partitions() -> str:
    """``partitions here: A, B`` as sinfo lists them, or what sinfo said instead."""
    try:
        names = _slurm(["sinfo", "-h", "-o", "%R"]).split()
    except (*SLURM_ERRORS, OSError) as error:
        return f"sinfo: {_why(error)}"
    return f"partitions here: {', '.join(sorted(set(names))) or 'none'}"


def _why(error: Exception) -> str:
    text = getattr(error, "stderr", None) or str(error)
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _live_jobs() -> dict[str, str]:
    """This user's queued and running jobs, array tasks one by one: job id -> job name."""
    out = _ask("squeue", ["squeue", "--me", "-h", "-r", "-o", "%i %j"])
    pairs = (line.partition(" ") for line in out.splitlines())
    return {job_id: name for job_id, _, name in pairs if name}


def _jobs_named(names: set[str], live: dict[str, str], since: float) -> dict[str, str]:
    """Job name -> (array) job id, for jobs of these names live now or submitted since ``since``.

    A finished job of the same name submitted before (an earlier attempt of the run) does not count.
    """
    found = {name: job_id.split("_")[0] for job_id, name in live.items() if name in names}
    if missing := names - set(found):
        start = datetime.fromtimestamp(int(since)).isoformat()  # local time, as sacct reads and prints it
        command = ["sacct", "-X", "-n", "-P", "-S", start, "--name", ",".join(sorted(missing))]
        out = _ask("sacct", [*command, "-o", "JobID,JobName,Submit"])
        for line in out.splitlines():
            job_id, name, submitted = (line.split("|") + ["", ""])[:3]
            if submitted >= start:
                found.setdefault(name, job_id.split("_")[0])
    return found


def _cancel_named(name: str) -> None:
    job_ids = sorted({job_id.split("_")[0] for job_id, job_name in _live_jobs().items() if job_name == name})
    if job_ids:
        logger.warning("cancelling job %s: its sbatch failed but queued it", ",".join(job_ids))
        _slurm(["scancel", *job_ids])


def _rows_by_job(lines: Iterable[str]) -> dict[str, list[list[str]]]:
    """Job id -> the other fields of its ``JOBID|FIELD|...`` rows, oldest first; a pending array's
    ``A_[2-5%2]`` row is expanded. A task's own rows win over a range row (accounting may still list a
    started task in the range).
    """
    ranged: dict[str, list[list[str]]] = {}
    exact: dict[str, list[list[str]]] = {}
    for line in lines:
        job, *fields = line.strip().split("|")
        if not job or not fields or not fields[0]:
            continue
        target = ranged if "[" in job else exact
        for main, *index in read_job_id(job):
            tasks = range(int(index[0]), int(index[-1]) + 1) if index else [None]
            for task in tasks:
                target.setdefault(main if task is None else f"{main}_{task}", []).append(fields)
    return {**ranged, **exact}


def _sacct_starts(bases: list[str]) -> dict[str, list[str]]:
    """The state of every start of these (array) jobs and their tasks, oldest first, from accounting
    (``-D``: a requeued job's earlier starts too).

    Without an answer nothing can be told apart (a job that ended from one never seen), so a failing
    sacct is ``ExecutorUnavailable``, never a guess.
    """
    # DerivedExitCode: ExitCode shows a job's exit code 130 as 2, minus 128, as it shows exit code 2
    fields = "JobID,State,DerivedExitCode"
    command = ["sacct", "-j", ",".join(bases), "-X", "-D", "-n", "-P", "-o", fields]
    try:
        out = _slurm(command)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise ExecutorUnavailable(f"SLURM accounting does not answer (sacct: {_why(error)})") from None
    rows = _rows_by_job(out.splitlines())
    return {
        job_id: [
            # a user's scancel is "CANCELLED by UID"; the controller's own, of a dependency never met, is
            # bare (its reason as accounting heard it may be Dependency, DependencyNeverSatisfied or None)
            _start_state(state, exit_code, dependency_failed=state == "CANCELLED")
            for state, exit_code, *_ in (fields + ["", ""] for fields in starts)
        ]
        for job_id, starts in rows.items()
    }


def _start_state(state: str, exit_code: str = "", *, dependency_failed: bool = False) -> str:
    """A start's state as SLURM names it, less what follows (``CANCELLED by 0``); ``ENDED_BY_SIGINT`` for a
    FAILED one whose exit code (``code:signal``) is a Ctrl-C's: the run was cut off, it did not give up;
    ``TRAINING_DID_NOT_COMPLETE`` for a job cancelled because what it waits on can no longer complete."""
    state = state.split()[0]
    if state == "FAILED" and exit_code in SIGINT_EXITS:
        return ENDED_BY_SIGINT
    return TRAINING_DID_NOT_COMPLETE if state == "CANCELLED" and dependency_failed else state


def _ping_controller() -> None:
    """``ExecutorUnavailable`` at once if slurmctld is down: ``scontrol ping`` says so in milliseconds,
    where squeue and scancel retry for 10 to 20 s and sbatch for minutes before they give up."""
    if shutil.which("scontrol") is None:  # a client without it: squeue and sacct will tell
        return
    try:
        _slurm(["scontrol", "ping"])
    except subprocess.CalledProcessError as error:  # "Slurmctld(primary) at HOST is DOWN", on stdout
        said = next((line.strip() for line in error.stdout.splitlines() if " is " in line), _why(error))
        raise _controller_down(f"scontrol ping: {said}") from None
    except subprocess.TimeoutExpired as error:
        raise _controller_down(_why(error)) from None


def _controller_down(why: str) -> ExecutorUnavailable:
    return ExecutorUnavailable(f"the SLURM controller does not answer ({why})")


def _with_controller_state(history: list[str], current: str) -> list[str]:
    """A job's starts from accounting, oldest first, with the controller's state of its last start: a new
    start when accounting's last one has ended (a requeue), else in place of accounting's (which lags); a
    cancel whose author the controller does not know leaves accounting's as it is."""
    if current == CANCELLED_BY_WHOM:
        return history or [current]
    accounted = bool(history) and JOB_STATES.get(history[-1], RunState.FAILED).finished
    if not accounted:
        return [*history[:-1], current]
    return [*history, current] if JOB_STATES.get(current, RunState.FAILED).active else history


def _squeue_jobs(bases: list[str]) -> dict[str, tuple[str, str]]:
    """State and pending reason of these jobs as the controller knows them: the live ones and those that
    ended in its last few minutes (``MinJobAge``). squeue fails when it knows none of them, and when the
    controller is down: then states from accounting alone could be stale, so nothing is told."""
    fields = "JobArrayID:0|,State:0|,DerivedEC:0|,Reason:0"  # -O: -o has no letter for the exit code
    command = ["squeue", "-h", "-r", "-t", "all", "-O", fields, "-j", ",".join(bases)]
    try:
        out = _slurm(command)
    except subprocess.CalledProcessError as error:
        if "Invalid job id" not in (error.stderr or ""):
            raise _controller_down(f"squeue: {_why(error)}") from None
        out = error.stdout or ""
    except subprocess.TimeoutExpired as error:
        raise _controller_down(_why(error)) from None
    jobs = {}
    for job_id, rows in _rows_by_job(out.splitlines()).items():
        state, status, *reason = rows[-1]
        # "Dependency": a user's cancel, or the controller's in the pass that found the dependency never
        # met (then accounting's bare CANCELLED tells); "DependencyNeverSatisfied": the controller's
        if state == "CANCELLED" and reason == ["Dependency"]:
            jobs[job_id] = (CANCELLED_BY_WHOM, "")
            continue
        never_met = reason == ["DependencyNeverSatisfied"]
        state = _start_state(state, _exit_code(status), dependency_failed=never_met)
        jobs[job_id] = (state, "|".join(reason))
    return jobs


def _exit_code(status: str) -> str:
    """squeue's exit code, a wait status (``33280``), as sacct writes one (``130:0``: code, signal)."""
    value = int(status) if status.isdigit() else 0
    return f"{value >> 8}:{value & 0x7F}"
