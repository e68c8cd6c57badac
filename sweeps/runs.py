"""What a sweep is made of: runs (one training or one evaluation each), their resources and their states.

A ``RunSpec`` is everything needed to start a run and to recognise it again: the config file and the
``key=value`` overrides that make it, its stage, the training it evaluates (for an evaluation), the
table cell it fills, and the resources its job asks for. Its ``run_id`` (see ``identity``) names its
folder in the results store.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

Stage = Literal["train", "eval"]
INIT_CHECKPOINT = "train.init_checkpoint"  # the weights an evaluation loads


class RunState(str, Enum):
    """Where a run stands; every executor reports through these."""

    NEW = "new"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # the run gave up: its error is in its record or its log
    INTERRUPTED = "interrupted"  # cut off from outside (a signal, a lost node): a re-run resumes it
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunState.COMPLETED, RunState.FAILED, RunState.INTERRUPTED, RunState.CANCELLED)

    @property
    def active(self) -> bool:
        return self in (RunState.QUEUED, RunState.RUNNING)


@dataclass(frozen=True)
class Resources:
    """What one run's job asks the scheduler for (the paper: 4 nodes x 8 GPUs per training)."""

    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: float | None = None
    time_min: int = 60
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_extra: dict[str, str] = field(default_factory=dict)
    max_in_flight: int = 8

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep; equal specs have equal ``run_id``s wherever they come from."""

    run_id: str
    stage: Stage
    config_file: str
    overrides: tuple[str, ...]
    parent: str | None = None  # the training an evaluation evaluates (None: a checkpoint in its overrides)
    cell: dict[str, Any] = field(default_factory=dict)  # axis values, for display and tables
    resources: Resources = field(default_factory=Resources)

    def train_argv(self, run_dir: Path, parent_dir: Path | None = None) -> list[str]:
        """Arguments of ``python -m mimdet.train`` for this run in ``run_dir``.

        Trainings always pass ``--resume``: a fresh folder starts from scratch, a folder with checkpoints
        (a requeued or re-run job) continues from the last one.
        """
        argv = ["--config-file", self.config_file, "--output", str(run_dir), "--run-id", self.run_id]
        if self.stage == "eval":
            argv += ["--eval-only", *self.overrides]
            if self.parent is not None:
                if parent_dir is None:
                    raise ValueError(f"evaluation {self.run_id} needs its training's folder")
                argv.append(f"{INIT_CHECKPOINT}={parent_dir / 'model_final.pth'}")
        else:
            argv += ["--resume", *self.overrides, "train.final_eval=False"]
        return argv

    @property
    def checkpoint(self) -> str | None:
        """The file an evaluation of a checkpoint (no parent) loads, from its overrides."""
        prefix = f"{INIT_CHECKPOINT}="
        return next((o[len(prefix) :] for o in self.overrides if o.startswith(prefix)), None)

    def command(self, run_dir: Path, parent_dir: Path | None = None) -> list[str]:
        """The whole command line, for the local executor and for ``sweep plan``'s listing."""
        return [sys.executable, "-m", "mimdet.train", *self.train_argv(run_dir, parent_dir)]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["overrides"] = list(self.overrides)
        return data
