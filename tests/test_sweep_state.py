"""How a run's state is decided from its record, its job handle and its executor — no cluster, no training.

The rules ``sweep status`` and ``sweep run`` rely on: an unreadable record is a failure kept for
``--retry-failed``; a job that ended without a record is *interrupted* when something outside cut it off
(a signal, a lost node) and *failed* when the run gave up; interrupted runs start again on a plain re-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from filelock import Timeout

from mimdet.record.examples import example_variant
from mimdet.record.schema import DatasetInfo, record_to_row, write_record
from sweeps.engine import decide
from sweeps.executor import JobStatus
from sweeps.expand import expand
from sweeps.handle import JobHandle
from sweeps.local import LocalExecutor, _start_ticks
from sweeps.runs import RunSpec, RunState
from sweeps.slurm import SlurmExecutor, _rows_by_job, _with_controller_state
from sweeps.spec import load_spec
from sweeps.state import RunStatus, collect_states
from sweeps.store import Store
from tests import REPO
from tests.test_record import make_record


class FixedWatcher:
    """An executor whose jobs are in the given states."""

    def __init__(self, jobs: dict[str, JobStatus]) -> None:
        self.jobs = jobs

    def describe(self, handles: Mapping[str, JobHandle]) -> dict[str, JobStatus]:
        return {run_id: self.jobs[run_id] for run_id in handles}


def run_spec(run_id: str) -> RunSpec:
    """The run ``make_record`` records: a record of another variant does not match it."""
    return RunSpec(run_id, "train", "experiments/tiny_mimdet.py", tuple(make_record().overrides))


def state_of(store: Store, run_id: str, **executors: Any) -> RunStatus:
    return collect_states(store, [run_spec(run_id)], {"local": LocalExecutor(store), **executors})[run_id]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "results")


def ended_local_job(store: Store, run_id: str, **extra: Any) -> None:
    """A handle of a local process that is gone (no process has pid 0)."""
    host = LocalExecutor(store).host
    store.write_job(run_id, JobHandle("local", pid=0, host=host, start_ticks="1", **extra))


@pytest.mark.parametrize(
    "on_disk",
    [
        {"executor": "local", "host": "node1", "pid": 4242, "start_ticks": "987", "submitted_at": 1.5},
        {  # start_ticks was null when the process had ended before it was read
            "executor": "local",
            "host": "node1",
            "pid": 7,
            "start_ticks": None,
            "returncode": -9,
            "cancelled": True,
        },
        {"executor": "slurm", "job_id": "12_3", "folder": "/results/runs/a/slurm", "submitted_at": 1.5},
        {"executor": "slurm", "job_id": "12", "cancelled": True},
    ],
)
def test_a_job_json_written_before_reads_back_and_is_written_as_it_was(
    store: Store, on_disk: dict[str, Any]
) -> None:
    """``job.json`` outlives the code that wrote it: the handles earlier versions wrote (plain dicts, keys
    by executor) read back field by field, and are written again with the same keys (a null one left out)."""
    store.run_dir("a").mkdir(parents=True)
    (store.run_dir("a") / "job.json").write_text(json.dumps(on_disk))
    set_fields = {key: value for key, value in on_disk.items() if value is not None}
    assert store.job("a") == JobHandle(**set_fields)
    store.write_job("a", JobHandle(**set_fields))
    assert json.loads((store.run_dir("a") / "job.json").read_text()) == set_fields


def test_no_record_no_job_is_new(store: Store) -> None:
    assert state_of(store, "a").state == RunState.NEW


@pytest.mark.parametrize("in_the_way", ["runs/a", "runs"])
def test_a_file_where_the_runs_folder_should_be_is_said(store: Store, in_the_way: str) -> None:
    """``runs/ID`` (or ``runs``) a file: the run is new, nothing of it ran, and the detail says what
    ``sweep run`` will stop on. Before: **new** without a word, its record and job unreadable under a file."""
    (store.root / in_the_way).parent.mkdir(parents=True, exist_ok=True)
    (store.root / in_the_way).write_text("not a folder")
    status = state_of(store, "a")
    assert (status.state, status.detail) == (RunState.NEW, f"{in_the_way} is a file, not a folder")
    assert state_of(Store(store.root / "elsewhere"), "a").detail == ""


def test_a_run_folder_that_is_a_link_to_nothing_is_said(store: Store, tmp_path: Path) -> None:
    """``runs/ID`` a link to a folder moved away: new, and the detail says so. Before: **new** without a
    word, and ``sweep run`` then stopped on it, calling it a file."""
    (store.root / "runs").mkdir(parents=True)
    (store.root / "runs" / "a").symlink_to(tmp_path / "moved")
    status = state_of(store, "a")
    assert (status.state, status.detail) == (
        RunState.NEW,
        f"runs/a is a link to {tmp_path}/moved, which is not there",
    )


@pytest.mark.parametrize(
    "content",
    [
        "{garbage",
        '{"executor": "local", "pid": "abc"}',
        '{"executor": "slurm", "submitted_at": [1]}',
        '{"executor": 5}',
        '{"executor": "local", "pid": 1234, "host": ["vm"], "start_ticks": "1"}',
        '{"executor": "local", "pid": true, "host": "vm", "start_ticks": "1"}',
        '{"executor": "local", "pid": 1.5, "host": "vm", "start_ticks": "1"}',
        '{"executor": "local", "pid": 1234, "host": "vm", "start_ticks": "1", "cancelled": "no"}',
        '{"executor": "slurm"}',
        '{"executor": "slurm", "job_id": "12,13"}',
        '{"executor": "slurm", "job_id": 12}',
    ],
)
def test_a_job_json_that_is_not_a_handle_reads_as_none(store: Store, content: str) -> None:
    """As no job (``new``) for this run, not an error that stops ``sweep status`` for every run. Before: a
    field of another type was converted (``"cancelled": "no"`` read as cancelled, a list as the host), and
    a SLURM handle without a job id stopped ``sweep status`` for every run (``sacct -j None``)."""
    store.run_dir("a").mkdir(parents=True)
    (store.run_dir("a") / "job.json").write_text(content)
    assert store.job("a") is None and state_of(store, "a").state == RunState.NEW


@pytest.mark.parametrize(
    "make",
    [
        lambda path: path.symlink_to("/dev/zero"),
        lambda path: path.write_text("[" * 100_000),  # deeper than json's recursion
        os.mkfifo,
    ],
    ids=["dev-zero", "deep", "fifo"],
)
def test_a_job_json_that_is_endless_deep_or_a_fifo_reads_as_none(store: Store, make: Any) -> None:
    """Read no further than 1 MiB, never waited on (before: the memory filled, a RecursionError, a hang)."""
    store.run_dir("a").mkdir(parents=True)
    make(store.run_dir("a") / "job.json")
    assert store.job("a") is None and state_of(store, "a").state == RunState.NEW


@pytest.mark.parametrize(("pid", "ticks"), [(2**31 - 1, None), (0, None), (1, "init's")])
def test_a_handle_that_names_no_run_process_is_not_running_and_cancel_signals_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch, pid: int, ticks: str | None
) -> None:
    """Before: a handle without a start time read as running while no process had its pid (a run whose
    process ended before its start time was read: waited for forever); pid 0 read as running too, and
    ``sweep cancel`` sent SIGTERM to its own process group; pid 1 with init's start time was a
    ``killpg(1)``, which is ``kill(-1)``: every process the user may signal."""
    executor = LocalExecutor(store)
    store.write_job(
        "a", JobHandle("local", pid=pid, host=executor.host, start_ticks=ticks and _start_ticks(1))
    )
    signalled: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "killpg", lambda *args: signalled.append(args))
    assert state_of(store, "a").state == RunState.INTERRUPTED
    handle = store.job("a")
    assert handle is not None
    executor.cancel({"a": handle})
    assert signalled == []


def test_an_unreadable_record_is_a_failure_that_names_the_problem(store: Store) -> None:
    store.run_dir("a").mkdir(parents=True)
    (store.run_dir("a") / "record.json").write_text('{"schema_version": 1, "run_id": ')
    status = state_of(store, "a")
    assert status.state == RunState.FAILED
    assert (
        status.detail.startswith(str(store.run_dir("a") / "record.json")) and "invalid JSON" in status.detail
    )
    assert "\n" not in status.detail


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "larger than 16 MiB, not a record"),
        (lambda path: path.write_bytes(b" " * (16 * 2**20) + b"{}"), "larger than 16 MiB, not a record"),
        (os.mkfifo, "invalid JSON"),  # no writer: read as empty, not waited on forever
    ],
    ids=["dev-zero", "huge", "fifo"],
)
def test_a_record_that_is_endless_huge_or_a_fifo_is_a_failure_read_no_further(
    store: Store, make: Any, problem: str
) -> None:
    store.run_dir("a").mkdir(parents=True)
    make(store.run_dir("a") / "record.json")
    status = state_of(store, "a")
    assert status.state == RunState.FAILED and problem in status.detail
    assert store.load_record("a") == (None, status.detail)


@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "100.5"])
def test_a_record_whose_ap_is_not_a_percentage_is_a_failure_not_a_result(store: Store, token: str) -> None:
    """Before: a box AP of Infinity (or NaN) read as null, the run **completed** and tabled without its
    number; now it is **failed**, with the one line naming the field and what is allowed, and no row."""
    data = make_record(run_id="a").to_dict()
    data["metrics"]["bbox"]["AP"] = "AP"
    store.run_dir("a").mkdir(parents=True)
    (store.run_dir("a") / "record.json").write_text(json.dumps(data).replace('"AP": "AP"', f'"AP": {token}'))
    status = state_of(store, "a")
    assert status.state == RunState.FAILED and status.row is None
    problem = "metrics.bbox.AP: expected a number from 0 to 100 or null, got "
    assert status.detail.startswith(f"{store.run_dir('a') / 'record.json'}: {problem}")


@pytest.mark.parametrize(
    ("changes", "mismatch"),
    [
        (
            {"variant": example_variant(embed_dim=64, depth=4, num_decoders=2, train_sample_ratio=0.25)},
            "variant.train_sample_ratio: expected 0.5, found 0.25",
        ),
        ({"stage": "eval"}, "stage: expected 'train', found 'eval'"),
        (
            {"dataset": DatasetInfo("coco_2017_train", "synthetic_val")},
            "dataset.train: expected 'synthetic_train', found 'coco_2017_train'",
        ),
    ],
    ids=["variant", "stage", "dataset"],
)
def test_a_record_that_does_not_match_its_run_is_a_failure_that_says_what_differs(
    store: Store, changes: dict[str, Any], mismatch: str
) -> None:
    """A record edited by hand (its variant, stage or data not what the run's config and overrides make):
    **failed**, no row, saying which field differs, expected and found. Before: **completed**, its row
    filling another cell of the table, or none, without a word."""
    write_record(make_record(run_id="a", **changes), store.run_dir("a") / "record.json")
    status = state_of(store, "a")
    assert (status.state, status.row, status.mismatch) == (RunState.FAILED, None, mismatch)
    assert status.detail == f"record.json does not match its run: {mismatch}"
    write_record(make_record(run_id="a"), store.run_dir("a") / "record.json")
    assert state_of(store, "a").state == RunState.COMPLETED


def test_a_record_of_another_run_is_not_taken_for_this_runs(store: Store) -> None:
    write_record(make_record(run_id="b"), store.run_dir("a") / "record.json")  # copied from b's folder
    status = state_of(store, "a")
    assert status.state == RunState.FAILED and status.row is None
    assert (
        status.detail
        == f"{store.run_dir('a') / 'record.json'}: run_id: 'b' is another run's id: not this run's record"
    )
    assert store.load_record("a") == (None, status.detail) and store.record("a") is None


@pytest.mark.parametrize(
    ("extra", "state", "detail"),
    [
        ({"returncode": -signal.SIGKILL}, RunState.INTERRUPTED, "killed by signal 9 (SIGKILL)"),
        ({"returncode": 130}, RunState.INTERRUPTED, "interrupted (SIGINT, exit code 130)"),  # mimdet.train's
        ({"returncode": 2}, RunState.FAILED, "exited with code 2"),
        ({}, RunState.INTERRUPTED, "ended while no sweep run watched it"),
        ({"returncode": 0}, RunState.FAILED, "no record"),  # ended well but wrote nothing
    ],
)
def test_a_local_job_that_ended_without_a_record(
    store: Store, extra: dict[str, Any], state: RunState, detail: str
) -> None:
    ended_local_job(store, "a", **extra)
    (store.run_dir("a") / "stderr.log").write_text("Traceback ...\nRuntimeError: boom\n")
    status = state_of(store, "a")
    assert status.state == state and detail in status.detail
    assert status.detail.endswith("RuntimeError: boom")  # the log's last line says why


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda path: path.symlink_to("/dev/zero"), "exited with code 2; no record: \0"),
        (lambda path: path.write_text("x" * (8 * 2**20) + "\nRuntimeError: boom\n"), "RuntimeError: boom"),
        (lambda path: path.mkdir(), "exited with code 2; no record"),
    ],
    ids=["dev-zero", "huge", "a-folder"],
)
def test_a_log_that_is_endless_huge_or_a_folder_gives_a_bounded_detail(
    store: Store, make: Any, detail: str
) -> None:
    """The detail of a run that ended without a record is its log's last line, read from the log's end."""
    ended_local_job(store, "a", returncode=2)
    make(store.run_dir("a") / "stderr.log")
    status = state_of(store, "a")
    assert status.state == RunState.FAILED and detail in status.detail
    assert len(status.detail) <= 4 * 2**20 + 100


def test_a_cancelled_handle_and_a_missing_executor(store: Store) -> None:
    ended_local_job(store, "a", cancelled=True)
    assert state_of(store, "a").state == RunState.CANCELLED
    store.write_job("b", JobHandle("slurm", job_id="12"))
    status = collect_states(store, [run_spec("b")], {})["b"]
    assert status.state == RunState.INTERRUPTED and "slurm executor is not available here" in status.detail


def test_a_failed_record_gives_way_to_its_requeued_job(store: Store) -> None:
    write_record(
        make_record(run_id="a", status="failed", error="SystemExit"), store.run_dir("a") / "record.json"
    )
    store.write_job("a", JobHandle("slurm", job_id="12"))
    requeued = FixedWatcher(
        {"a": JobStatus(RunState.QUEUED, "slurm job 12 PENDING, restart 1 after PREEMPTED")}
    )
    status = state_of(store, "a", slurm=requeued)
    assert (
        status.state == RunState.QUEUED and "restart 1 after PREEMPTED; earlier: SystemExit" in status.detail
    )
    ended = FixedWatcher({"a": JobStatus(RunState.INTERRUPTED, "slurm job 12 PREEMPTED")})
    record = store.record("a")
    assert record is not None
    failed = RunStatus(run_spec("a"), RunState.FAILED, "SystemExit", record_to_row(record))
    assert state_of(store, "a", slurm=ended) == failed


def test_a_plain_rerun_starts_new_and_interrupted_runs_only() -> None:
    runs = [run_spec(state.value) for state in RunState]
    states = {run.run_id: RunStatus(run, RunState(run.run_id)) for run in runs}
    assert [run.run_id for run in decide(runs, states, retry_failed=False).start] == ["new", "interrupted"]
    retried = decide(runs, states, retry_failed=True).start
    assert [run.run_id for run in retried] == ["new", "failed", "interrupted", "cancelled"]


def test_sacct_and_squeue_rows_by_job() -> None:
    """``sacct -D`` lists every start of a requeued job, oldest first; a pending array's range row is
    expanded and a task's own rows win over it."""
    rows = _rows_by_job(
        [
            "574|NODE_FAIL",
            "574|PENDING",
            "575_[1-3%2]|PENDING",
            "575_1|RUNNING",
            "576|CANCELLED by 0",
            "",
            "x|",
        ]
    )
    assert rows == {
        "574": [["NODE_FAIL"], ["PENDING"]],
        "575_1": [["RUNNING"]],
        "575_2": [["PENDING"]],
        "575_3": [["PENDING"]],
        "576": [["CANCELLED by 0"]],
    }
    assert _rows_by_job(["580|PENDING|Nodes required for job are DOWN"]) == {
        "580": [["PENDING", "Nodes required for job are DOWN"]]
    }


def test_the_controller_state_wins_where_accounting_lags() -> None:
    """Accounting hears of starts, requeues and ends late: a job's last state is the controller's unless
    accounting's last start has ended and the controller's has too (then it is the same start)."""
    assert _with_controller_state([], "CANCELLED") == ["CANCELLED"]  # ended before accounting heard of it
    assert _with_controller_state(["PENDING"], "RUNNING") == ["RUNNING"]
    assert _with_controller_state(["RUNNING"], "COMPLETED") == ["COMPLETED"]
    assert _with_controller_state(["NODE_FAIL"], "PENDING") == ["NODE_FAIL", "PENDING"]  # requeued
    assert _with_controller_state(["CANCELLED by 0"], "CANCELLED") == ["CANCELLED by 0"]


def fake_slurm(folder: Path, scripts: Mapping[str, str]) -> dict[str, str]:
    """An environment whose SLURM commands are these shell scripts (a command not given answers nothing)."""
    folder.mkdir()
    for name in ("scontrol", "sacct", "squeue", "sbatch"):
        (folder / name).write_text(f"#!/bin/sh\n{scripts.get(name, 'exit 0')}\n")
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def described(
    folder: Path, monkeypatch: pytest.MonkeyPatch, jobs: range, sacct: str = "exit 0", squeue: str = "exit 0"
) -> dict[str, JobStatus]:
    """What ``SlurmExecutor.describe`` makes of these jobs when sacct and squeue are these shell scripts."""
    monkeypatch.setenv("PATH", fake_slurm(folder / "bin", {"sacct": sacct, "squeue": squeue})["PATH"])
    executor = SlurmExecutor(Store(folder / "results"))
    return executor.describe({str(job): JobHandle("slurm", job_id=str(job)) for job in jobs})


def test_a_job_ended_before_accounting_heard_of_it_reads_as_the_controller_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job can leave the queue before accounting lists it: squeue's ``-t all`` still knows it for
    minutes; reading it as vanished called it interrupted, to be started again."""
    squeue = 'case "$*" in *"-t all"*) echo "13|CANCELLED|0|None";; esac'
    found = described(tmp_path, monkeypatch, range(13, 14), squeue=squeue)
    assert found == {"13": JobStatus(RunState.CANCELLED, "slurm job 13 CANCELLED")}


def test_an_evaluation_its_failed_training_took_along_is_started_again_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller cancels an evaluation whose training ended without completing (``afterok``, with
    ``--kill-on-invalid-dep``): it never ran, so it reads interrupted and the next ``sweep run`` that
    starts its training starts it too; one a user cancelled while it waited stays cancelled. As SLURM
    22.05 words them: accounting's bare ``CANCELLED`` (whatever its reason, ``None`` too) vs ``CANCELLED by
    0``; the controller's ``DependencyNeverSatisfied``, and ``Dependency`` for a user's cancel and for its
    own in the pass that found the dependency never met: then the job waits until accounting says whose.
    Before: cancelled, so only ``--retry-failed`` ran it, after a Ctrl-C of its training too; and CI read
    accounting's ``CANCELLED`` with reason ``None`` as a user's cancel."""
    sacct = (
        'printf "20|CANCELLED|0:0|Dependency\n21|CANCELLED by 0|0:0|Dependency\n'
        '24|CANCELLED|0:0|DependencyNeverSatisfied\n25|CANCELLED|0:0|None\n26|PENDING|0:0|Dependency\n"'
    )
    squeue = (
        'case "$*" in *"-t all"*) printf "22|CANCELLED|0|DependencyNeverSatisfied\n'
        '23|CANCELLED|0|Dependency\n25|CANCELLED|0|Dependency\n26|CANCELLED|0|Dependency\n";; esac'
    )
    found = described(tmp_path, monkeypatch, range(20, 27), sacct, squeue)
    assert {job: status.state for job, status in found.items()} == {
        "20": RunState.INTERRUPTED,
        "21": RunState.CANCELLED,
        "22": RunState.INTERRUPTED,
        "23": RunState.QUEUED,
        "24": RunState.INTERRUPTED,
        "25": RunState.INTERRUPTED,
        "26": RunState.QUEUED,
    }
    assert found["20"].detail == "slurm job 20 CANCELLED (its training did not complete)"


def test_a_job_a_ctrl_c_ended_is_interrupted_and_any_other_failure_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A FAILED job whose exit code is a SIGINT's (``scancel --signal=INT``: mimdet.train's 130, or a task
    killed by the signal before it ran) was cut off, as a local run that exits 130 is: interrupted, in
    accounting's ``code:signal`` and in the controller's wait status (accounting lags an end); other exit
    codes (2: bad input) are the run's own failure. Before: every FAILED job was a failed run."""
    sacct = 'printf "14|FAILED|130:0\\n15|FAILED|0:2\\n16|FAILED|2:0\\n17|RUNNING|0:0\\n18|RUNNING|0:0\\n"'
    squeue = (
        'case "$*" in *"-t all"*) printf "17|FAILED|33280|NonZeroExitCode\\n18|FAILED|512|None\\n";; esac'
    )
    found = described(tmp_path, monkeypatch, range(14, 19), sacct, squeue)
    assert {job: status.state for job, status in found.items()} == {
        "14": RunState.INTERRUPTED,
        "15": RunState.INTERRUPTED,
        "16": RunState.FAILED,
        "17": RunState.INTERRUPTED,
        "18": RunState.FAILED,
    }
    assert found["14"].detail == "slurm job 14 FAILED (SIGINT)"


@pytest.mark.parametrize(
    ("log", "line"),
    [
        ("mimdet.train: interrupted\nsrun: error: vm: task 0: Exited with exit code 130\n", "interrupted"),
        (
            "mimdet.train: error: no such dataset file\n"
            "srun: error: vm: task 0: Exited with exit code 2\nsrun: Terminating StepId=12.0\n",
            "error: no such dataset file",
        ),
        ("srun: error: vm: task 0: Exited with exit code 1\n", ""),
    ],
)
def test_the_detail_of_an_ended_slurm_job_is_the_runs_last_line_not_sruns(
    store: Store, log: str, line: str
) -> None:
    """srun appends its own lines to a job's ``_log.err`` as the job ends; the detail of a run that ended
    without a record is the run's last line before them. Before: ``srun: error: vm: task 0: Exited with
    exit code 130`` instead of ``mimdet.train: interrupted``."""
    store.write_job("a", JobHandle("slurm", job_id="12"))
    (store.run_dir("a") / "slurm").mkdir(parents=True)
    (store.run_dir("a") / "slurm" / "12_0_log.err").write_text(log)
    ended = FixedWatcher({"a": JobStatus(RunState.INTERRUPTED, "slurm job 12 FAILED (SIGINT)")})
    status = state_of(store, "a", slurm=ended)
    own = f": mimdet.train: {line}" if line else ""
    assert status.detail == f"slurm job 12 FAILED (SIGINT); no record{own}"


def test_a_slurm_log_that_links_to_nothing_is_read_around(store: Store) -> None:
    """A run's job log that is a link to nothing (or vanished meanwhile) is left out; its other log gives
    the detail. Before: sorting the logs by time stat'ed it, and ``sweep status``, ``plan``, ``table`` and
    ``logs`` of the whole sweep failed, ``[Errno 2] No such file or directory``."""
    store.write_job("a", JobHandle("slurm", job_id="12"))
    logs = store.run_dir("a") / "slurm"
    logs.mkdir(parents=True)
    (logs / "11_log.err").write_text("mimdet.train: interrupted\n")
    (logs / "12_log.err").symlink_to(logs / "gone")
    ended = FixedWatcher({"a": JobStatus(RunState.INTERRUPTED, "slurm job 12 FAILED (SIGINT)")})
    status = state_of(store, "a", slurm=ended)
    assert status.detail == "slurm job 12 FAILED (SIGINT); no record: mimdet.train: interrupted"
    assert store.log_path("a") == logs / "11_log.err"


def test_slurm_that_does_not_answer_is_one_line_and_decides_nothing(tmp_path: Path) -> None:
    """With the controller and accounting down, no run's state can be told: ``sweep status`` and
    ``sweep run`` say so in one line (exit 3) instead of calling submitted jobs lost."""
    down = "echo 'Unable to contact slurm controller (connect failure)' >&2\nexit 1"
    env = fake_slurm(tmp_path / "bin", dict.fromkeys(("scontrol", "sacct", "squeue", "sbatch"), down))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: down\nbase_config: experiments/tiny_mimdet.py\ntrain:\n  axes:\n    train.seed: [1]\n"
    )
    store = Store(tmp_path / "results")
    (run,) = expand(load_spec(spec)).runs
    store.write_job(run.run_id, JobHandle("slurm", job_id="12"))
    env["PYTHONWARNINGS"] = "ignore"
    for command in ("status", "run"):
        result = subprocess.run(
            [sys.executable, "-m", "cli.main", command, str(spec), "--root", str(store.root)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
            env=env,
        )
        assert result.returncode == 3, result.stderr
        assert result.stderr.strip() == (
            "sweep: error: the SLURM controller does not answer (scontrol ping: Unable to contact slurm"
            " controller (connect failure)); nothing was changed, try again later"
        )
    assert store.job(run.run_id) == JobHandle("slurm", job_id="12")


def test_a_run_lock_holds_while_its_holder_lives_and_dies_with_it(store: Store) -> None:
    """A killed ``sweep run`` leaves no lock behind: a run's lock is a flock, the kernel's, dropped with
    the process that held it (SIGKILL included); while that process lives, nobody else gets it."""
    store.run_dir("a").mkdir(parents=True)
    hold = f"from filelock import FileLock; lock = FileLock({str(store.run_dir('a') / 'run.lock')!r})"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"{hold}; lock.acquire(); import time; print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(Timeout):
            store.lock("a").acquire(timeout=0.5)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    lock = store.lock("a")
    lock.acquire(timeout=5)
    lock.release()
