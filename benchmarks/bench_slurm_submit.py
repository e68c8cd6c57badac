"""Time submitting a sweep stage to SLURM: N trivial runs as one job array, in s per job (target <= 0.2).

    sudo scripts/slurm/start-slurm.sh     # a local SLURM (or run it on a cluster's login node)
    .venv/bin/python benchmarks/bench_slurm_submit.py [--runs 50] [--repeat 3]

``SlurmExecutor.submit`` does for each run what a real sweep does (run.json, the ``submitting`` marker, the
job pickle, moving the held job's files into the run's folder, job.json) around one sbatch and one
``scontrol release`` for the array. The runs are trainings of a config that does not exist, cancelled
right after each measurement, so nothing real runs. Not a test: it prints the figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sweeps.runs import Resources, RunSpec
from sweeps.slurm import SlurmExecutor
from sweeps.store import Store


def trivial_runs(count: int) -> list[RunSpec]:
    tag = uuid.uuid4().hex[:6]
    resources = Resources(cpus_per_task=1, mem_gb=0.5, time_min=5, max_in_flight=1)
    return [
        RunSpec(f"bench-{tag}-{i}", "train", "no-such-config.py", (f"train.seed={i}",), resources=resources)
        for i in range(count)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        print("no SLURM controller answers: start one with scripts/slurm/start-slurm.sh", file=sys.stderr)
        return 1
    per_job = []
    with tempfile.TemporaryDirectory(prefix="bench-slurm-") as root:
        executor = SlurmExecutor(Store(Path(root)))
        for _ in range(args.repeat):
            runs = trivial_runs(args.runs)
            started = time.perf_counter()
            handles = executor.submit(runs)
            seconds = time.perf_counter() - started
            arrays = {handle.job_id.split("_")[0] for handle in handles.values()}
            executor.cancel(handles)
            assert len(handles) == args.runs and len(arrays) == 1, (len(handles), arrays)
            per_job.append(seconds / args.runs)
            print(f"{args.runs} runs as array {arrays.pop()}: {seconds:.2f} s, {per_job[-1]:.4f} s/job")
    print(f"submission: {statistics.median(per_job):.4f} s/job (median of {args.repeat}; target <= 0.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
