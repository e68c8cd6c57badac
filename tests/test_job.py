"""The function a SLURM job runs (``sweeps.job.TrainJob``), called in a plain process: no cluster."""

from __future__ import annotations

import sys

import pytest

from tests import REPO
from tests.stalling import interrupted_at_its_stall

STALLED_JOB = """
import os, sys
import sweeps.job
from tests.stalling import stall, stall_first_import

if sys.argv[1] == "torch":
    stall_first_import("torch")
else:  # a task of a job of two, joining its process group
    os.environ["SLURM_NTASKS"] = "2"
    sweeps.job._join_process_group = stall
sweeps.job.TrainJob()(["--help"])
"""


@pytest.mark.parametrize("point", ["torch", "process group"])
def test_a_ctrl_c_before_the_run_starts_is_its_one_line_and_exit_130(point: str) -> None:
    """A Ctrl-C (``scancel --signal=INT``) reaching the job while it loads torch or joins its process
    group, before ``mimdet.train`` runs: the same line as once it runs, ``mimdet.train: interrupted``,
    exit 130, so that the run reads interrupted. Before: a ``KeyboardInterrupt`` traceback in the job's
    log."""
    command = [sys.executable, "-c", STALLED_JOB, point]
    assert interrupted_at_its_stall(command, REPO, PYTHONWARNINGS="ignore") == (
        130,
        "mimdet.train: interrupted\n",
    )
