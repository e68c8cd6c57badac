"""The function a SLURM job runs: one ``mimdet.train`` run, requeued from its checkpoints when preempted.

``TrainJob`` keeps nothing in memory (STYLE item 11): its only input is the run's argv, and a training's
argv always carries ``--resume``, so the fresh ``TrainJob`` that ``checkpoint()`` hands to submitit on
preemption or timeout continues from the newest checkpoint detectron2 left in the run's folder.

A Ctrl-C (``scancel --signal=INT``) ends the job with mimdet.train's exit code 130 and its one line, not
with a failure's traceback, also one before mimdet.train runs (while torch loads, while the process group
forms), so that ``sweeps.slurm`` reads the run interrupted, as the local executor does.
"""

from __future__ import annotations

import os
import sys

from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from mimdet.run.exit_codes import EXIT_INTERRUPTED, interrupted


class TrainJob(Checkpointable):
    """``python -m mimdet.train ARGV`` inside the job process (one process per task)."""

    def __call__(self, argv: list[str]) -> int:
        try:  # a Ctrl-C before mimdet.train runs (torch loading, the process group) is its line too
            # imported here: the process that submits jobs never needs torch or detectron2
            import torch

            from mimdet.train import main

            if cpus := os.environ.get("SLURM_CPUS_PER_TASK"):
                # torch starts a thread per core of the node, not per CPU of the job, where SLURM does not
                # bind tasks to cores (as on the local test cluster: two 1-CPU jobs ran 5x slower)
                torch.set_num_threads(int(cpus))
            if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
                _join_process_group()
        except KeyboardInterrupt:
            sys.exit(interrupted("mimdet.train"))
        code = main(list(argv))
        if code == EXIT_INTERRUPTED:  # SystemExit passes submitit by (it catches Exception): the job's code
            sys.exit(code)
        if code != 0:
            raise RuntimeError(f"mimdet.train exited with code {code} (the run's log says why)")
        return code

    def checkpoint(self, argv: list[str]) -> DelayedSubmission:
        """The same run again: on restart ``--resume`` picks the newest checkpoint on disk."""
        return DelayedSubmission(TrainJob(), argv)


def _join_process_group() -> None:
    """Set up ``torch.distributed`` the way detectron2's ``launch`` does in each process it spawns.

    Under SLURM, srun already started one process per GPU (``tasks_per_node = gpus_per_node``), on every
    node; spawning more with ``launch`` would multiply them. So each task exports its rank and the
    rendezvous address from the SLURM environment (submitit's ``TorchDistributedEnvironment``: MASTER_ADDR,
    MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK), joins the process group from it and creates detectron2's
    per-machine group. ``mimdet.train.main`` then calls ``launch`` with one process per machine (its
    default ``--num-gpus 1``), which runs the work function directly in this task, inside the group.
    """
    import torch
    import torch.distributed as dist
    from detectron2.utils import comm

    env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
    comm.create_local_process_group(env.local_world_size)
    if cuda:
        torch.cuda.set_device(env.local_rank)  # every task sees all GPUs of its node: take its own
    comm.synchronize()
