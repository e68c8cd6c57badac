"""The results store: one folder per run, ``ROOT/runs/<run_id>/``, shared by everyone who uses the root.

A run's folder holds ``run.json`` (its ``RunSpec``, written before it starts), the run's own output
(``record.json``, ``log.txt``, ``config.yaml``, checkpoints), ``job.json`` (the executor's handle: which
process or SLURM job runs it), the job's logs and ``run.lock``. State is read from these files, so any
process — a re-run of ``sweep run``, ``sweep status`` on another login node — sees the same thing.

The root comes from ``--root``, else ``$MIMDET_RESULTS``, else the spec, else ``./results``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from mimdet.record.atomic import file_in_the_way, read_at_most, write_json_atomic
from mimdet.record.schema import RecordError, RunRecord, parse_record, read_record_bytes

from .handle import JobHandle
from .runs import RunSpec
from .safe_text import store_root_problem

ENV_ROOT = "MIMDET_RESULTS"
DEFAULT_ROOT = "results"
MAX_JSON_BYTES = 2**20  # a job handle or a submission marker is a few hundred bytes
LOG_TAIL_BYTES = 4 * 2**20  # how much of a log's end is read for its last lines
SRUN_PREFIX = "srun: "  # srun's own lines in a SLURM job's log (`srun: error: vm: task 0: Exited with ...`)


def resolve_root(cli_root: str | None, spec_root: str | None) -> Path:
    """The store's root by precedence: command line, environment, spec, default.

    ValueError (one line) for a root that cannot reach a job script safely (``sweeps.safe_text``), or that
    is a file or lies under one.
    """
    if cli_root == "":  # an unset shell variable, --root "$ROOT": not the default store
        raise ValueError(
            "store root from --root: empty (allowed: a folder's path; leave --root out for the default)"
        )
    given = [("--root", cli_root), (f"${ENV_ROOT}", os.environ.get(ENV_ROOT)), ("the spec's root", spec_root)]
    source, root = next(((source, root) for source, root in given if root), ("default", DEFAULT_ROOT))
    if problem := store_root_problem(root):
        raise ValueError(f"store root from {source}: {problem}")
    path = Path(root).expanduser().resolve()
    if in_the_way := file_in_the_way(path):
        raise ValueError(f"store root from {source}: {in_the_way}")
    return path


def read_json(path: Path) -> dict[str, Any] | None:
    """A small JSON object (a job handle, a submission marker), or None: none there, unreadable, not a JSON
    object, or larger than ``MAX_JSON_BYTES`` (a link to ``/dev/zero`` is read no further); opened without
    blocking (a FIFO reads as empty)."""
    try:
        text = read_at_most(path, MAX_JSON_BYTES)
        data = json.loads(text) if len(text) <= MAX_JSON_BYTES else None
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def tail_lines(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a log, read from at most its last ``LOG_TAIL_BYTES`` (a log of many GB or
    a link to ``/dev/zero`` is not read whole), opened without blocking (a FIFO reads as empty)."""
    return _end_lines(path)[-lines:]


def _end_lines(path: Path) -> list[str]:
    """The lines of a log's last ``LOG_TAIL_BYTES``, as ``tail_lines`` reads them."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > LOG_TAIL_BYTES:
            handle.seek(size - LOG_TAIL_BYTES)
        data = handle.read(LOG_TAIL_BYTES)
    return data.decode("utf-8", errors="replace").splitlines()


@dataclass(frozen=True)
class Store:
    root: Path

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def write_spec(self, run: RunSpec) -> None:
        write_json_atomic(self.run_dir(run.run_id) / "run.json", run.to_json(), sort_keys=True)

    def record(self, run_id: str) -> RunRecord | None:
        """The run's record, or None if it has none (yet) or it cannot be read."""
        return self.load_record(run_id)[0]

    def load_record(self, run_id: str) -> tuple[RunRecord | None, str | None]:
        """The run's record, or None and why it cannot be read (one line); (None, None) if it has none."""
        data, unreadable = self.record_bytes(run_id)
        return (None, unreadable) if data is None else self.record_from(run_id, data)

    def record_bytes(self, run_id: str) -> tuple[bytes | None, str | None]:
        """The bytes of the run's ``record.json``, or None and why they cannot be read (one line); (None,
        None) if it has none."""
        path = self._record_path(run_id)
        try:
            return read_record_bytes(path), None
        except RecordError as error:
            return (None, None) if not os.path.exists(path) else (None, str(error))

    def record_from(self, run_id: str, data: bytes) -> tuple[RunRecord | None, str | None]:
        """The run's record from the bytes of its ``record.json``, or None and why they are not (one line):
        not a record, or another run's (copied or moved from that run's folder)."""
        path = self._record_path(run_id)
        try:
            record = parse_record(data, source=path)
        except RecordError as error:
            return None, str(error)
        if record.run_id != run_id:
            problem = f"{record.run_id!r} is another run's id: not this run's record"
            return None, str(RecordError(path, "run_id", problem))
        return record, None

    def _record_path(self, run_id: str) -> str:
        return os.path.join(self.root, "runs", run_id, "record.json")  # a str: 10,000 of them in a status

    def lock(self, run_id: str) -> FileLock:
        """The run's lock: held while a ``sweep run`` decides to start it and starts it (``claimed``)."""
        self.run_dir(run_id).mkdir(parents=True, exist_ok=True)
        return FileLock(self.run_dir(run_id) / "run.lock")

    def job(self, run_id: str) -> JobHandle | None:
        """The executor's handle of the run's latest job; None for none, or one that is not a handle (not
        JSON, or a field of the wrong type: ``"pid": "abc"``)."""
        data = read_json(Path(self.root, "runs", run_id, "job.json"))
        try:
            return None if data is None else JobHandle.from_json(data)
        except (TypeError, ValueError):
            return None

    def write_job(self, run_id: str, handle: JobHandle) -> None:
        write_json_atomic(self.run_dir(run_id) / "job.json", handle.to_json(), sort_keys=True)

    def log_path(self, run_id: str) -> Path:
        """The run's main log: detectron2's log.txt, else the job's stderr."""
        folder = self.run_dir(run_id)
        for name in ("log.txt", "stderr.log"):
            if (folder / name).exists():
                return folder / name
        found = self._job_logs(run_id)
        return found[-1] if found else folder / "log.txt"

    def log_tail(self, run_id: str, lines: int = 20) -> str:
        """The last lines the run itself wrote to its job's stderr: srun's own, which it appends to a SLURM
        job's log as the job ends (``srun: error: vm: task 0: Exited with exit code 130``), are left out,
        so that the detail of an ended run is the run's line (``mimdet.train: interrupted``)."""
        paths = [self.run_dir(run_id) / "stderr.log", *self._job_logs(run_id)]
        for path in reversed(paths):
            if path.exists():
                try:
                    own = [line for line in _end_lines(path) if not line.startswith(SRUN_PREFIX)]
                except OSError:  # a folder where the log should be: no tail to show
                    return ""
                return "\n".join(own[-lines:])
        return ""

    def _job_logs(self, run_id: str) -> list[Path]:
        """The run's SLURM job logs, oldest first (by time: job ids do not sort as text). One that cannot be
        read (a link to nothing, a log removed since the folder was listed) is left out, as an unreadable
        ``job.json`` is: it is one run's, and must not stop a command about the whole sweep."""
        dated = []
        for path in self.run_dir(run_id).glob("slurm/*_log.err"):
            try:
                dated.append((path.stat().st_mtime, path))
            except OSError:
                continue
        return [path for _, path in sorted(dated)]
