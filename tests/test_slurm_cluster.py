"""End-to-end checks of the submitit -> SLURM path the ablation runs take, on the local cluster.

Each test submits real jobs through ``submitit.AutoExecutor`` and checks what SLURM did with them
(results, sacct states, GRES, start/end times, log files). Jobs take ~1 s and ask for 1 CPU and
1 GB, so two run at once on a 2-core machine. Every wait is bounded, so a stuck job fails its test
instead of hanging the session; ``job.result()`` is only called once the job is known to be done.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cloudpickle
import pytest
import submitit
from submitit.core.utils import FailedJobError

from tests.slurm_cluster import SlurmCluster, poll_sacct

pytestmark = pytest.mark.slurm

# Pickle the job functions by value: the job then does not need to import this module, which
# would only work when pytest was started from the repository root (the job's working directory).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

FAILURE_MARKER = "mimdet-ablate-slurm-failure-marker"
JOB_TIMEOUT_S = 60.0  # a ~1 s job normally takes 1-6 s from submission to result
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED")


# ----------------------------------------------------------------------------- job payloads
def job_env(a: int, b: int) -> tuple[int, str | None, str | None]:
    """Return a + b with the job id and GPU count SLURM gave the job."""
    time.sleep(0.5)
    return a + b, os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_GPUS_ON_NODE")


def square_task(x: int) -> tuple[int, str | None]:
    time.sleep(1)
    return x * x, os.environ.get("SLURM_ARRAY_TASK_ID")


def timed_sleep(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def fail() -> None:
    raise ValueError(FAILURE_MARKER)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture
def executor(slurm_cluster: SlurmCluster, tmp_path: Path) -> submitit.AutoExecutor:
    """A 1-CPU/1-GB executor logging under tmp_path (readable by the job user: the same user here)."""
    ex = submitit.AutoExecutor(folder=tmp_path / "%j")
    ex.update_parameters(
        name="mimdet-ablate-test",
        timeout_min=5,
        cpus_per_task=1,
        mem_gb=1,
        slurm_partition=slurm_cluster.partition,
    )
    return ex


def wait_done(job: submitit.Job, timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Poll until the job is finished (result pickle or terminal sacct state), bounded by timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not job.done(force_check=True):
        if time.monotonic() > deadline:
            pytest.fail(f"job {job.job_id} not done after {timeout_s:.0f}s (state {job.state})")
        time.sleep(0.5)


def wait_state(job: submitit.Job, prefix: str, timeout_s: float = JOB_TIMEOUT_S) -> str:
    """Poll sacct until the job's state starts with prefix (e.g. 'CANCELLED by 0'); return it."""
    deadline = time.monotonic() + timeout_s
    while not (state := job.watcher.get_state(job.job_id, mode="force")).startswith(prefix):
        if time.monotonic() > deadline:
            pytest.fail(f"job {job.job_id} not {prefix} after {timeout_s:.0f}s (state {state})")
        time.sleep(0.5)
    return state


def sacct_final(
    job_id: str, fields: str = "JobID", rows: int = 1, timeout_s: float = 30
) -> list[dict[str, str]]:
    """Allocation rows of ``sacct -j job_id`` once all ``rows`` of them are in a final state."""

    def ready(found: list[dict[str, str]]) -> bool:
        return len(found) == rows and all(r["State"].startswith(FINAL_STATES) for r in found)

    return poll_sacct(job_id, ["State", *fields.split(",")], ready, timeout_s)


# ----------------------------------------------------------------------------- tests
def test_submit_returns_result(executor: submitit.AutoExecutor) -> None:
    assert executor.cluster == "slurm"
    job = executor.submit(job_env, 2, 40)
    wait_done(job)
    total, job_id, _ = job.result()
    assert total == 42
    assert job_id == job.job_id
    assert sacct_final(job.job_id)[0]["State"] == "COMPLETED"


def test_job_array_results_in_order(executor: submitit.AutoExecutor) -> None:
    executor.update_parameters(slurm_array_parallelism=2)
    inputs = [3, 1, 4, 2]
    jobs = executor.map_array(square_task, inputs)
    array_id = jobs[0].job_id.split("_")[0]
    assert [j.job_id for j in jobs] == [f"{array_id}_{i}" for i in range(len(inputs))]
    for job in jobs:
        wait_done(job)
    assert [job.result() for job in jobs] == [(x * x, str(i)) for i, x in enumerate(inputs)]
    rows = sacct_final(array_id, rows=len(inputs))
    assert sorted(row["JobID"] for row in rows) == sorted(j.job_id for j in jobs)
    assert {row["State"] for row in rows} == {"COMPLETED"}
    # slurmctld keeps finished job records for MinJobAge (300 s): the throttle reached it
    records = subprocess.run(
        ["scontrol", "-o", "show", "job", array_id], capture_output=True, text=True, timeout=30, check=True
    ).stdout.splitlines()
    assert len(records) == len(inputs)
    assert all(f"ArrayJobId={array_id} " in r and "ArrayTaskThrottle=2 " in r for r in records), records


def test_gpu_request_is_scheduled_with_gres(
    executor: submitit.AutoExecutor, slurm_cluster: SlurmCluster
) -> None:
    if slurm_cluster.gpus_per_node < 1:
        pytest.skip("the local cluster has no GPU GRES (started with SLURM_GPUS=0)")
    executor.update_parameters(gpus_per_node=1)
    job = executor.submit(job_env, 1, 1)
    wait_done(job)
    assert job.result()[2] == "1"  # SLURM_GPUS_ON_NODE inside the job
    row = sacct_final(job.job_id, "AllocTRES")[0]
    assert row["State"] == "COMPLETED"
    assert "gres/gpu=1" in row["AllocTRES"].split(","), row


def test_afterok_dependency_waits_for_first_job(executor: submitit.AutoExecutor) -> None:
    first = executor.submit(timed_sleep, 2)
    executor.update_parameters(slurm_additional_parameters={"dependency": f"afterok:{first.job_id}"})
    second = executor.submit(timed_sleep, 0.5)
    wait_done(first)
    wait_done(second)
    first_start, first_end = first.result()
    second_start, _ = second.result()
    # two CPUs are free, so without the dependency both would have started together
    assert second_start >= first_end, f"second started {first_end - second_start:.1f}s before first ended"
    assert first_end - first_start >= 2
    first_end_sacct = datetime.fromisoformat(sacct_final(first.job_id, "End")[0]["End"])
    assert datetime.fromisoformat(sacct_final(second.job_id, "Start")[0]["Start"]) >= first_end_sacct


def test_failing_job_raises_and_keeps_stderr(executor: submitit.AutoExecutor) -> None:
    job = executor.submit(fail)
    wait_done(job)
    with pytest.raises(FailedJobError, match=FAILURE_MARKER):
        job.result()
    stderr = job.paths.stderr
    assert stderr.exists(), f"{stderr} missing"
    log = stderr.read_text()
    assert "ValueError" in log and FAILURE_MARKER in log
    assert wait_state(job, "FAILED") == "FAILED"


def test_cancel_ends_in_cancelled(executor: submitit.AutoExecutor) -> None:
    job = executor.submit(timed_sleep, 60)  # bounded even if the test fails before cancelling
    wait_state(job, "RUNNING")
    job.cancel()
    assert wait_state(job, "CANCELLED", timeout_s=30).startswith("CANCELLED")
    assert job.done(force_check=True)
    assert not job.paths.result_pickle.exists()
