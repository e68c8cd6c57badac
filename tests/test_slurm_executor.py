"""The SLURM executor: its job settings and sbatch script (no cluster), then micro sweeps on the local SLURM.

The cluster tests submit real micro trainings (8 synthetic images, a few iterations on 1 CPU, ~10 s)
through ``SlurmExecutor`` and check what SLURM and the store show: one array per stage, evaluations
started after their training ended, a failure kept with its log, cancellation, a preempted training
resumed from its checkpoint, and no job submitted twice (also after a ``sweep run`` died mid-submission,
and when sbatch times out after queueing). Jobs ask for 1 CPU / 3 GB, so two run at once; every wait is
bounded, and a test's leftover jobs are cancelled when it ends.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import submitit
import yaml
from submitit.slurm import slurm as submitit_slurm

import sweeps.slurm
from sweeps.collect import results_frame
from sweeps.expand import SweepPlan, expand
from sweeps.handle import JobHandle
from sweeps.runs import Resources, RunSpec, RunState, Stage
from sweeps.slurm import MARKER, SlurmExecutor, batch_settings, launcher_settings, submitit_executor
from sweeps.spec import load_spec
from sweeps.state import RunStatus, collect_states
from sweeps.store import Store, read_json, write_json_atomic
from tests import REPO
from tests.micro import micro_dataset, micro_overrides, micro_settings
from tests.slurm_cluster import SlurmCluster, lose_node, poll_sacct, restore_node, stop_controller

DATA = Path(__file__).parent / "data"
CONFIG = str(REPO / "experiments" / "tiny_mimdet.py")
RATIO = "model.backbone.bottom_up.test_sample_ratio"
MICRO = Resources(cpus_per_task=1, mem_gb=3, time_min=10, max_in_flight=2)
SWEEP_TIMEOUT_S = 150.0  # a micro training takes ~10 s, an evaluation ~8 s (two at a time)
PAPER = Resources(
    nodes=4,
    gpus_per_node=8,
    cpus_per_task=10,
    mem_gb=480,
    time_min=4320,
    partition="learnfair",
    account="mimdet",
    qos="high",
    constraint="volta32gb",
    sbatch_extra={"exclusive": "user"},
    max_in_flight=4,
)


# ----------------------------------------------------------------------------- settings (no cluster)
def test_launcher_settings_convert_every_resource() -> None:
    assert launcher_settings(PAPER, "train") == {
        "name": "mimdet-train",
        "nodes": 4,
        "gpus_per_node": 8,
        "tasks_per_node": 8,
        "cpus_per_task": 10,
        "mem_gb": 480,
        "timeout_min": 4320,
        "slurm_partition": "learnfair",
        "slurm_account": "mimdet",
        "slurm_qos": "high",
        "slurm_constraint": "volta32gb",
        "slurm_additional_parameters": {"exclusive": "user"},
        "slurm_array_parallelism": 4,
        "slurm_signal_delay_s": 120,
        "slurm_max_num_timeout": 10,
    }
    assert launcher_settings(Resources(time_min=2), "eval") == {
        "name": "mimdet-eval",
        "nodes": 1,
        "tasks_per_node": 1,
        "cpus_per_task": 2,
        "timeout_min": 2,
        "slurm_additional_parameters": {},
        "slurm_array_parallelism": 8,
        "slurm_signal_delay_s": 30,  # a quarter of a short time limit
        "slurm_max_num_timeout": 10,
    }


@pytest.mark.parametrize(
    ("reference", "stage", "count", "dependency"),
    [("sbatch_train_array.sh", "train", 3, ""), ("sbatch_eval_after.sh", "eval", 2, "afterok:1234_5")],
)
def test_sbatch_script_matches_reference(
    monkeypatch: pytest.MonkeyPatch, reference: str, stage: Stage, count: int, dependency: str
) -> None:
    """The script submitit writes for a batch, built by its own builder; delete the file to re-record it."""
    monkeypatch.setattr(submitit_slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # no srun here
    folder = "/results/slurm/BATCH/%j"
    settings = batch_settings(PAPER, stage, name=f"mimdet-{stage}-BATCH", dependency=dependency)
    executor = submitit_executor(folder, settings)
    script = submitit_slurm._make_sbatch_string(
        command=f"python -u -m submitit.core._submit {folder}",
        folder=folder,
        map_count=count,
        **executor._executor.parameters,
    )
    path = DATA / reference
    if not path.exists():
        path.write_text(script)
    assert script == path.read_text()
    assert executor._executor.max_num_timeout == 10  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def micro_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return micro_dataset(tmp_path_factory.mktemp("data"))


def training(data: Path, name: str, *extra: str, resources: Resources = MICRO) -> RunSpec:
    """A micro training with a run id unique to this test session (job names carry it)."""
    overrides = (*micro_overrides(data), "train.max_iter=4", "train.checkpointer.period=2", *extra)
    return RunSpec(f"{name}-{uuid.uuid4().hex[:6]}", "train", CONFIG, overrides, resources=resources)


def evaluation(data: Path, parent: RunSpec, ratio: float, resources: Resources = MICRO) -> RunSpec:
    overrides = (*micro_overrides(data), f"{RATIO}={ratio}")
    return RunSpec(
        f"{parent.run_id}-eval-{ratio}", "eval", CONFIG, overrides, parent.run_id, resources=resources
    )


@pytest.fixture
def store(slurm_cluster: SlurmCluster, tmp_path: Path) -> Iterator[Store]:
    """A results store; its jobs still queued or running when the test ends are cancelled."""
    store = Store(tmp_path / "results")
    yield store
    job_ids, names = set(), set()
    for folder in (store.root / "runs").glob("*"):
        job_ids |= {path.name.removesuffix("_submitted.pkl") for path in folder.glob("slurm/*_submitted.pkl")}
        job_ids |= {str(handle.job_id)} if (handle := store.job(folder.name)) else set()
        names |= {marker["job_name"]} if (marker := read_json(folder / MARKER)) else set()
    if job_ids:
        subprocess.run(["scancel", *sorted(job_ids)], capture_output=True, timeout=30)
    for name in names:
        subprocess.run(["scancel", "--me", "--name", name], capture_output=True, timeout=30)


def sacct_rows(
    job_ids: list[str], fields: str, rows: int, timeout_s: float = 30
) -> dict[str, dict[str, str]]:
    """``sacct -X`` rows of these jobs by job id, once ``rows`` of them are there (accounting lags)."""
    bases = ",".join(sorted({job_id.split("_")[0] for job_id in job_ids}))
    found = poll_sacct(bases, ["JobID", *fields.split(",")], lambda found: len(found) >= rows, timeout_s)
    return {row["JobID"]: row for row in found}


def jobs_named(name: str, *, ended_too: bool = True) -> list[str]:
    """Every job of this name SLURM knows: the live ones (squeue) and the ended ones (sacct, last hour)."""
    live = subprocess.run(
        ["squeue", "--me", "-h", "-o", "%i", "--name", name], capture_output=True, text=True, timeout=30
    ).stdout.split()
    if not ended_too:
        return sorted({job_id.split("_")[0] for job_id in live}, key=int)
    ended = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-1hour", "--name", name, "-o", "JobID"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.split()
    return sorted({job_id.split("_")[0] for job_id in live + ended}, key=int)


def one_training_spec(
    folder: Path, name: str, settings: dict, time_min: int, eval_ratios: list[float] | None = None
) -> Path:
    """A SLURM spec of one tiny training (seed 1), evaluated at ``eval_ratios`` if given, in ``folder``."""
    resources = f"  resources: {{cpus_per_task: 1, mem_gb: 3, time_min: {time_min}}}\n"
    text = f"name: {name}\nbase_config: experiments/tiny_mimdet.py\nexecutor: slurm\n"
    text += yaml.safe_dump({"overrides": settings}) + "train:\n  axes:\n    train.seed: [1]\n" + resources
    if eval_ratios is not None:
        text += f"eval:\n  axes:\n    {RATIO}: {eval_ratios}\n" + resources
    spec = folder / f"{name}.yaml"
    spec.write_text(text)
    return spec


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout_s:.0f}s")
        time.sleep(0.5)


def sweep(command: str, spec: Path, store: Store, **env: str) -> subprocess.CompletedProcess[str]:
    """``sweep COMMAND SPEC --root STORE`` as a user runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", command, str(spec), "--root", str(store.root)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
    )


def starts_of_training(log: Path) -> list[int]:
    lines = log.read_text().splitlines()
    return [int(line.rsplit(" ", 1)[1]) for line in lines if "Starting training from iteration" in line]


# ----------------------------------------------------------------------------- on the local SLURM
def test_micro_sweep_trains_in_one_array_and_evaluates_after(store: Store, micro_data: Path) -> None:
    trainings = [training(micro_data, f"train{seed}", f"train.seed={seed}") for seed in (1, 2)]
    evaluations = [evaluation(micro_data, parent, ratio) for parent in trainings for ratio in (0.25, 0.5)]
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([*trainings, *evaluations])
    assert set(handles) == {run.run_id for run in [*trainings, *evaluations]} and executor.skipped == {}
    assert all(store.job(run_id) == handle for run_id, handle in handles.items())

    array = handles[trainings[0].run_id].job_id.split("_")[0]
    assert [handles[run.run_id].job_id for run in trainings] == [f"{array}_0", f"{array}_1"]
    for parent in trainings:  # the evaluations of a training: one array of their own
        ids = [handles[run.run_id].job_id for run in evaluations if run.parent == parent.run_id]
        assert len({job_id.split("_")[0] for job_id in ids}) == 1 and ids[0].split("_")[0] != array

    states = executor.wait(handles, timeout_s=SWEEP_TIMEOUT_S)
    assert set(states.values()) == {RunState.COMPLETED}, states
    rows = sacct_rows([handle.job_id for handle in handles.values()], "State,Start,End", rows=6)
    for run in evaluations:
        parent_end = datetime.fromisoformat(rows[handles[run.parent or ""].job_id]["End"])
        assert datetime.fromisoformat(rows[handles[run.run_id].job_id]["Start"]) >= parent_end, run.run_id

    plan = SweepPlan(trainings, evaluations)
    statuses = collect_states(store, plan.runs, {"slurm": executor})
    assert {status.state for status in statuses.values()} == {RunState.COMPLETED}
    frame = results_frame(plan, store, statuses)
    assert list(frame["status"]) == ["completed"] * 6
    assert frame.loc[frame.stage == "eval", "bbox_AP"].notna().all()
    for run in [*trainings, *evaluations]:  # the job's files stay with the run
        assert list((store.run_dir(run.run_id) / "slurm").glob("*_log.out")), run.run_id
        assert not (store.run_dir(run.run_id) / MARKER).exists()


def test_failing_training_fails_with_its_log_and_the_rest_finishes(store: Store, micro_data: Path) -> None:
    missing = store.root / "nowhere" / "instances.json"
    good = training(micro_data, "good")
    ghost = f"dataset_paths={{ghost:[{missing},{store.root}]}}"
    bad = training(micro_data, "bad", ghost, "dataloader.test.dataset.names=ghost")
    after_bad = evaluation(micro_data, bad, 0.5)
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([good, bad, after_bad])
    assert len({handles[run.run_id].job_id.split("_")[0] for run in (good, bad)}) == 1  # one array

    states = executor.wait(handles, timeout_s=SWEEP_TIMEOUT_S)
    assert states == {
        good.run_id: RunState.COMPLETED,
        bad.run_id: RunState.FAILED,
        after_bad.run_id: RunState.INTERRUPTED,  # --kill-on-invalid-dep: never ran, comes with its training
    }, executor.describe(handles)
    record = store.record(bad.run_id)
    assert record is not None and record.status == "failed" and str(missing) in (record.error or "")
    assert str(missing) in store.log_tail(bad.run_id, lines=50)  # the job's stderr, in the run's folder
    assert store.log_path(bad.run_id).exists()
    statuses = collect_states(store, [good, bad, after_bad], {"slurm": executor})
    assert [statuses[run.run_id].state for run in (good, bad, after_bad)] == [
        RunState.COMPLETED,
        RunState.FAILED,
        RunState.INTERRUPTED,
    ]
    assert "CANCELLED (its training did not complete)" in statuses[after_bad.run_id].detail
    # an evaluation of a training known to have failed is not submitted at all
    late = evaluation(micro_data, bad, 0.25)
    assert executor.submit([late]) == {} and "failed" in executor.skipped[late.run_id].why


def test_cancel_ends_the_training_and_its_waiting_evaluation(store: Store, micro_data: Path) -> None:
    long = training(micro_data, "long", "train.max_iter=2000")
    after = evaluation(micro_data, long, 0.5)
    executor = SlurmExecutor(store, poll_s=0.5)
    handles = executor.submit([long, after])
    train_handle = {long.run_id: handles[long.run_id]}
    wait_for(lambda: executor.states(train_handle)[long.run_id] == RunState.RUNNING, "training running", 60)
    assert executor.states({after.run_id: handles[after.run_id]})[after.run_id] == RunState.QUEUED

    assert executor.cancel(train_handle) == 1
    states = executor.wait(handles, timeout_s=60)
    assert states == {long.run_id: RunState.CANCELLED, after.run_id: RunState.INTERRUPTED}  # it never ran
    assert store.job(long.run_id) == dataclasses.replace(handles[long.run_id], cancelled=True)
    assert executor.cancel(handles) == 0  # nothing live is left


def test_preempted_training_is_requeued_and_resumes_from_checkpoint(store: Store, micro_data: Path) -> None:
    # time limits under 12.5 min make submitit take any USR2 for a timeout; this one is a preemption
    hour = Resources(cpus_per_task=1, mem_gb=3, time_min=60)
    run = training(
        micro_data, "preempted", "train.max_iter=40", "train.checkpointer.period=4", resources=hour
    )
    executor = SlurmExecutor(store, poll_s=1)
    handle = executor.submit([run])[run.run_id]
    folder = store.run_dir(run.run_id)

    def saved_at_iteration_8() -> bool:  # the tag is written once the checkpoint file is complete
        return (folder / "last_checkpoint").exists() and "0000007" in (folder / "last_checkpoint").read_text()

    wait_for(saved_at_iteration_8, "checkpoint of iteration 8", 90)
    submitit.SlurmJob(folder=handle.folder, job_id=handle.job_id)._interrupt()  # preemption
    requeued = {run.run_id: handle}
    wait_for(lambda: executor.states(requeued)[run.run_id] == RunState.QUEUED, "requeued", 30)
    assert collect_states(store, [run], {"slurm": executor})[run.run_id].state.active  # whatever it wrote
    # the interrupted run wrote a failed record, but its job is queued again: nothing is submitted twice
    assert SlurmExecutor(store).submit([run])[run.run_id].job_id == handle.job_id
    assert jobs_named(f"mimdet-{run.run_id}") == [handle.job_id]

    assert executor.wait(requeued, timeout_s=SWEEP_TIMEOUT_S)[run.run_id] == RunState.COMPLETED
    first, second = starts_of_training(folder / "log.txt")
    assert first == 0 and second >= 8
    record = store.record(run.run_id)
    assert record is not None and record.status == "completed" and record.iterations == 40
    submitit_log = "".join(path.read_text() for path in (folder / "slurm").glob("*_log.out"))
    assert "this job is preempted" in submitit_log and "Requeued job" in submitit_log


def test_a_lost_node_requeues_the_training_and_it_resumes_when_the_node_returns(
    store: Store, micro_data: Path, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """slurmd and the job's processes die at once, unannounced: slurmctld sets the node DOWN after
    ``SlurmdTimeout`` and requeues the job (``--requeue``); ``sweep status`` says so and returns, a bounded
    wait gives up instead of hanging, and once slurmd is back the training resumes from its checkpoint."""
    if os.geteuid() != 0:
        pytest.skip("restarting slurmd after the node is lost needs root")
    settings = {**micro_settings(micro_data), "train.max_iter": 60, "train.checkpointer.period": 4}
    spec = one_training_spec(tmp_path, "lost", settings, time_min=60)
    (run,) = expand(load_spec(spec)).runs
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([run])
    folder = store.run_dir(run.run_id)
    wait_for(lambda: (folder / "last_checkpoint").exists(), "a checkpoint", 120)

    lose_node(slurm_cluster)
    try:

        def status() -> RunStatus:
            return collect_states(store, [run], {"slurm": executor})[run.run_id]

        wait_for(lambda: "NODE_FAIL" in status().detail, "the job requeued after NODE_FAIL", 120)
        wait_for(lambda: "DOWN" in status().detail, "the job waiting for its node", 60)  # after BeginTime
        assert status().state == RunState.QUEUED and "restart 1 after NODE_FAIL" in status().detail
        started = time.monotonic()
        shown = sweep("status", spec, store)
        assert shown.returncode == 0 and "1 queued" in shown.stdout, shown.stdout + shown.stderr
        assert "restart 1 after NODE_FAIL" in shown.stdout, shown.stdout
        with pytest.raises(TimeoutError, match=run.run_id):
            executor.wait(handles, timeout_s=3)
        assert time.monotonic() - started < 60  # nothing waits for the node
    finally:
        restore_node()

    assert executor.wait(handles, timeout_s=SWEEP_TIMEOUT_S)[run.run_id] == RunState.COMPLETED
    first, second = starts_of_training(folder / "log.txt")
    assert first == 0 and second >= 4
    record = store.record(run.run_id)
    assert record is not None and record.status == "completed" and record.iterations == 60
    ended = executor.describe(handles)[run.run_id].detail
    assert ended == f"slurm job {handles[run.run_id].job_id} COMPLETED, restart 1 after NODE_FAIL"


def test_a_training_over_two_tasks_is_one_distributed_run(
    store: Store, micro_data: Path, slurm_cluster: SlurmCluster
) -> None:
    """A multi-GPU job, on the CPU: SLURM starts one task per (fake) GPU, the tasks join one gloo process
    group from SLURM's environment, train one model under DistributedDataParallel (the batch split between
    them), evaluate their halves of the val set together, and rank 0 writes the one record."""
    if slurm_cluster.gpus_per_node < 2:
        pytest.skip(f"the running cluster has {slurm_cluster.gpus_per_node} fake GPUs per node, 2 needed")
    two = Resources(gpus_per_node=2, cpus_per_task=1, mem_gb=6, time_min=10)
    run = training(micro_data, "ddp", "train.max_iter=6", resources=two)
    after = evaluation(micro_data, run, 1.0, resources=two)
    alone = dataclasses.replace(after, run_id=f"{after.run_id}-alone", resources=MICRO)
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([run, after, alone])
    states = executor.wait(handles, timeout_s=SWEEP_TIMEOUT_S)
    assert set(states.values()) == {RunState.COMPLETED}, states
    trained, evaluated = store.record(run.run_id), store.record(after.run_id)
    assert trained is not None and evaluated is not None
    assert trained.iterations == 6 and evaluated.parent_run_id == run.run_id
    for record in (trained, evaluated):
        assert record.hardware.processes == 2 and record.hardware.gpu_count == 0
    # every val image evaluated once: the two ranks' detections, gathered, score as one process's do
    single = store.record(alone.run_id)
    assert single is not None and single.hardware.processes == 1
    assert evaluated.metrics == single.metrics and evaluated.metrics.bbox.AP is not None
    for folder in map(store.run_dir, (run.run_id, after.run_id)):
        assert "World size: 2" in (folder / "log.txt").read_text()
        assert (folder / "log.txt.rank1").exists() and not list(folder.glob("record.json.*"))


def test_submitting_twice_and_after_a_killed_submission_makes_no_duplicate(
    store: Store, micro_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = [training(micro_data, f"dup{seed}", "train.max_iter=2", f"train.seed={seed}") for seed in (1, 2)]
    # a `sweep run` killed after sbatch, before the jobs' files were moved and their handles written
    with monkeypatch.context() as patch:
        patch.setattr(sweeps.slurm, "_adopt", _killed)
        with pytest.raises(KeyboardInterrupt):
            SlurmExecutor(store).submit(runs)
    markers = [read_json(store.run_dir(run.run_id) / MARKER) for run in runs]
    assert all(marker is not None for marker in markers) and store.job(runs[0].run_id) is None
    name = str(markers[0]["job_name"])  # type: ignore[index]
    [array] = jobs_named(name)
    # a run whose marker names no job (sbatch never answered) is submitted afresh
    fresh = training(micro_data, "fresh", "train.max_iter=2", resources=Resources(cpus_per_task=1, mem_gb=1))
    marker = {"job_name": f"mimdet-{fresh.run_id}", "index": None, "batch_folder": str(store.root / "none")}
    write_json_atomic(store.run_dir(fresh.run_id) / MARKER, {**marker, "written_at": time.time()})
    # a marker that is JSON but not a marker (a field missing, of another type) reads as none
    garbled = training(micro_data, "garbled", "train.max_iter=2")
    write_json_atomic(store.run_dir(garbled.run_id) / MARKER, {"job_name": 5, "index": "0"})

    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([*runs, fresh, garbled])
    assert [handles[run.run_id].job_id for run in runs] == [f"{array}_0", f"{array}_1"]
    assert jobs_named(name) == [array] and len(jobs_named(f"mimdet-{fresh.run_id}")) == 1
    assert len(jobs_named(f"mimdet-{garbled.run_id}")) == 1
    assert not any((store.run_dir(run.run_id) / MARKER).exists() for run in [*runs, fresh, garbled])
    # the caller's check: the runs are active or done, so a second `sweep run` leaves them alone ...
    assert all(state in (RunState.QUEUED, RunState.RUNNING) for state in executor.states(handles).values())
    # ... and submitting them again anyway finds their live jobs
    assert executor.submit(runs) == {run.run_id: handles[run.run_id] for run in runs}
    assert jobs_named(name) == [array]
    assert executor.cancel({key: handles[key] for key in (fresh.run_id, garbled.run_id)}) == 2
    # the recovered jobs were released and found their pickles in the runs' folders
    states = executor.wait({run.run_id: handles[run.run_id] for run in runs}, timeout_s=SWEEP_TIMEOUT_S)
    assert set(states.values()) == {RunState.COMPLETED}
    assert all(store.record(run.run_id).status == "completed" for run in runs)  # type: ignore[union-attr]


def _killed(job_folder: Path, target: Path) -> None:
    raise KeyboardInterrupt


def test_sbatch_refusals_are_retried_and_a_timed_out_sbatch_leaves_no_duplicate(
    store: Store, micro_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A fake sbatch: the first call queues the job but reports a socket timeout; 'refused' runs never go."""
    real = shutil.which("sbatch")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(
        "#!/bin/bash\n"
        f"n=$(( $(cat {tmp_path}/calls 2>/dev/null || echo 0) + 1 )); echo $n > {tmp_path}/calls\n"
        'if grep -q "job-name=mimdet-refused" "$1"; then\n'
        '  echo "sbatch: error: QOSMaxSubmitJobPerUserLimit" >&2; exit 1; fi\n'
        f'if [ $n -eq 1 ]; then {real} --parsable "$@" > {tmp_path}/timed_out\n'
        '  echo "sbatch: error: Socket timed out on send/recv operation" >&2; exit 1; fi\n'
        f'exec {real} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(sweeps.slurm, "FIRST_RETRY_S", 0.05)
    flaky = training(micro_data, "flaky", "train.max_iter=2")
    refused = training(micro_data, "refused", resources=Resources(cpus_per_task=1, mem_gb=1))

    executor = SlurmExecutor(store)
    handles = executor.submit([flaky, refused])
    assert list(handles) == [flaky.run_id]
    assert "QOSMaxSubmitJobPerUserLimit" in executor.skipped[refused.run_id].why
    assert (store.run_dir(refused.run_id) / MARKER).exists()  # the next submit looks for it by name
    # the job the timed-out sbatch queued was cancelled; the retry's job is the only live one
    timed_out = (tmp_path / "timed_out").read_text().strip()
    lost = {"lost": JobHandle("slurm", job_id=timed_out)}
    assert executor.wait(lost, timeout_s=30) == {"lost": RunState.CANCELLED}
    assert handles[flaky.run_id].job_id != timed_out
    assert jobs_named(f"mimdet-{flaky.run_id}") == [handles[flaky.run_id].job_id]
    assert executor.cancel(handles) == 1


def test_a_partition_slurm_does_not_have_is_not_retried_and_sweep_run_fails_in_one_line(
    store: Store, micro_data: Path, tmp_path: Path
) -> None:
    """``train.resources.partition: nowhere``: sbatch's refusal cannot change, so it is not retried; each run
    is one line naming the key and the partitions there are, exit 2. Before: six tries in ~1 min, 23 lines
    of sbatch's stderr, ``submitted 0 runs`` and exit 0."""
    spec = one_training_spec(tmp_path, "nowhere", micro_settings(micro_data), time_min=5, eval_ratios=[1.0])
    spec.write_text(spec.read_text().replace("time_min: 5}", "time_min: 5, partition: nowhere}", 1))
    (training_run, evaluation_run) = expand(load_spec(spec)).runs
    started = time.monotonic()
    result = sweep("run", spec, store)
    assert result.returncode == 2, result.stdout + result.stderr
    assert time.monotonic() - started < 45  # python and torch's import; no back-off
    assert result.stderr == "", result.stderr
    partitions = subprocess.run(
        ["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=30
    ).stdout.split()
    assert result.stdout.splitlines()[1:] == [
        f"not submitted: {training_run.run_id}: sbatch refuses train.resources.partition 'nowhere' for good: "
        f"Invalid partition name specified (partitions here: {', '.join(sorted(set(partitions)))}); "
        "not retried",
        f"not submitted: {evaluation_run.run_id}: its training {training_run.run_id} is not submitted",
    ], result.stdout
    assert store.job(training_run.run_id) is None and not jobs_named(f"mimdet-{training_run.run_id}")


def test_a_job_slurm_will_not_release_is_cancelled_and_its_run_stays_new(
    store: Store, micro_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More GPUs a node than the cluster's nodes have: sbatch takes the held job, and the release is refused
    for good. Before: the job stayed in the queue, held, and the next ``sweep run`` queued another."""
    monkeypatch.setattr(sweeps.slurm, "FIRST_RETRY_S", 0.05)
    greedy = training(micro_data, "greedy", resources=Resources(gpus_per_node=64, cpus_per_task=1, mem_gb=1))
    executor = SlurmExecutor(store)
    assert executor.submit([greedy]) == {}
    assert "SLURM would not release job " in executor.skipped[greedy.run_id].why
    assert executor.skipped[greedy.run_id].why.endswith("so it was cancelled")
    assert not (store.run_dir(greedy.run_id) / MARKER).exists() and store.job(greedy.run_id) is None
    name = f"mimdet-{greedy.run_id}"
    wait_for(lambda: not jobs_named(name, ended_too=False), "the held job gone from the queue", 30)


@pytest.mark.parametrize("how", ["sweep cancel", "scancel from outside"])
def test_a_cancelled_training_is_cancelled_not_failed(store: Store, micro_data: Path, how: str) -> None:
    """scancel SIGTERMs every process of the job: the DataLoader workers die, the training fails on them
    and writes a failed record before SLURM kills it; the run is what accounting says, cancelled."""
    run = training(micro_data, "cancelled", "train.max_iter=2000", "dataloader.train.num_workers=1")
    executor = SlurmExecutor(store, poll_s=0.5)
    handles = executor.submit([run])
    log = store.run_dir(run.run_id) / "log.txt"
    wait_for(lambda: log.exists() and "Starting training" in log.read_text(), "training started", 90)
    if how == "sweep cancel":
        assert executor.cancel(handles) == 1
    else:
        subprocess.run(["scancel", handles[run.run_id].job_id], check=True, timeout=30)
    assert executor.wait(handles, timeout_s=60) == {run.run_id: RunState.CANCELLED}
    wait_for(lambda: store.record(run.run_id) is not None, "the record the stopped training wrote", 30)
    assert "DataLoader worker" in (store.record(run.run_id).error or "")  # type: ignore[union-attr]
    status = collect_states(store, [run], {"slurm": executor})[run.run_id]
    assert status.state == RunState.CANCELLED, status
    assert "DataLoader" not in status.detail and "CANCELLED" in status.detail.upper(), status.detail


def test_a_training_stopped_by_ctrl_c_is_interrupted_and_a_plain_rerun_resumes_it(
    store: Store, micro_data: Path, tmp_path: Path
) -> None:
    """``scancel --signal=INT`` (a user's Ctrl-C reaching the job): mimdet.train stops in one line, exit 130,
    no record, its checkpoints kept; the run is interrupted and a plain ``sweep run`` resumes it. Before:
    the job function turned exit 130 into a RuntimeError: the job FAILED, only ``--retry-failed`` ran it."""
    settings = {**micro_settings(micro_data), "train.max_iter": 40, "train.checkpointer.period": 4}
    spec = one_training_spec(tmp_path, "ctrl-c", settings, time_min=10, eval_ratios=[1.0])
    run, evaluation_run = expand(load_spec(spec)).runs
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([run, evaluation_run])
    folder = store.run_dir(run.run_id)
    wait_for(lambda: (folder / "last_checkpoint").exists(), "a checkpoint", 120)
    subprocess.run(["scancel", "--signal=INT", handles[run.run_id].job_id], check=True, timeout=30)
    # the waiting evaluation never ran: it comes again with its training (before: cancelled for good)
    interrupted = {run.run_id: RunState.INTERRUPTED, evaluation_run.run_id: RunState.INTERRUPTED}
    assert executor.wait(handles, timeout_s=60) == interrupted
    status = collect_states(store, [run], {"slurm": executor})[run.run_id]
    assert status.state == RunState.INTERRUPTED, status
    assert "FAILED (SIGINT)" in status.detail, status.detail
    assert store.record(run.run_id) is None
    job_log = store.log_tail(run.run_id, lines=5)
    assert "mimdet.train: interrupted" in job_log and "Traceback" not in job_log, job_log

    rerun = sweep("run", spec, store)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    resubmitted = {each.run_id: store.job(each.run_id) for each in (run, evaluation_run)}
    assert all(resubmitted[key] not in (None, handles[key]) for key in resubmitted)
    states = executor.wait(resubmitted, timeout_s=SWEEP_TIMEOUT_S)  # type: ignore[arg-type]
    assert states == dict.fromkeys(resubmitted, RunState.COMPLETED)
    first, second = starts_of_training(folder / "log.txt")
    assert first == 0 and second >= 4
    record = store.record(run.run_id)
    assert record is not None and record.status == "completed" and record.iterations == 40


def test_a_controller_that_does_not_answer_is_one_line_and_changes_nothing(
    store: Store, micro_data: Path, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """slurmctld down, accounting up: sacct would still list the job as it last knew it; ``sweep status``
    and ``sweep cancel`` say in one line that the controller does not answer (exit 3), at once."""
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld again needs root")
    settings = {**micro_settings(micro_data), "train.max_iter": 2000}
    spec = one_training_spec(tmp_path, "down", settings, time_min=60)
    (run,) = expand(load_spec(spec)).runs
    executor = SlurmExecutor(store, poll_s=1)
    handles = executor.submit([run])
    wait_for(lambda: executor.states(handles)[run.run_id] == RunState.RUNNING, "training running", 60)
    stop_controller(slurm_cluster)
    try:
        for command in ("status", "cancel"):
            started = time.monotonic()
            result = sweep(command, spec, store)
            assert result.returncode == 3, result.stdout + result.stderr
            (line,) = result.stderr.strip().splitlines()
            assert line.startswith("sweep: error: the SLURM controller does not answer (scontrol ping: ")
            assert line.endswith(" is DOWN); nothing was changed, try again later"), line
            # not the 158 s of squeue and scancel retrying; python and torch's import take most of it, and
            # more on a busy machine
            assert time.monotonic() - started < 60, command
        assert store.job(run.run_id) == handles[run.run_id]
    finally:
        restore_node()
    status = executor.describe(handles)[run.run_id]
    assert status.state == RunState.RUNNING, status  # the job lived on meanwhile


def test_two_sweep_runs_at_once_submit_each_run_once(store: Store, micro_data: Path, tmp_path: Path) -> None:
    """Two ``sweep run --executor slurm`` of one spec on one store, started together: one sbatch for the
    training and one for its evaluations in all; each run is one job, trains or evaluates once."""
    real = shutil.which("sbatch")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/sbatch_calls\nexec {real} "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)
    settings = {**micro_settings(micro_data), "train.max_iter": 4}
    spec = one_training_spec(tmp_path, "twice", settings, time_min=10, eval_ratios=[0.5, 1.0])
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "cli.main", "run", str(spec), "--root", str(store.root)]
    both = [
        subprocess.Popen(
            command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300)[0] for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    assert len((tmp_path / "sbatch_calls").read_text().splitlines()) == 2, outputs

    runs = expand(load_spec(spec)).runs
    handles = {run.run_id: store.job(run.run_id) for run in runs}
    assert all(handle is not None for handle in handles.values())
    for run in runs:  # one job per run: submitit wrote one submission into its folder
        assert len(list((store.run_dir(run.run_id) / "slurm").glob("*_submitted.pkl"))) == 1, run.run_id
    states = SlurmExecutor(store, poll_s=1).wait(handles, timeout_s=SWEEP_TIMEOUT_S)  # type: ignore[arg-type]
    assert set(states.values()) == {RunState.COMPLETED}, states
    (trained,) = [run for run in runs if run.stage == "train"]
    assert starts_of_training(store.run_dir(trained.run_id) / "log.txt") == [0]
