"""A run's job handle: which process or SLURM job runs it, as its folder's ``job.json`` keeps it.

The handle is how any process (a re-run of ``sweep run``, ``sweep status`` on another login node) finds a
run's job again, so it lives on disk and outlives the code that wrote it: ``from_json`` reads every
handle written so far (the on-disk keys are the field names), ``to_json`` writes only the fields that are
set, as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class JobHandle:
    """One type for every executor, as the state reads them alike: ``executor`` names whose job it is and
    ``cancelled`` that ``sweep cancel`` stopped it; the fields of the other executor are None."""

    executor: str  # "local" | "slurm"; a handle of an executor unknown here still reads
    submitted_at: float | None = None
    cancelled: bool = False
    # a SLURM job
    job_id: str | None = None  # "123", or "123_4" for an array task
    folder: str | None = None  # its submitit folder
    # a local process
    pid: int | None = None
    host: str | None = None
    start_ticks: str | None = None  # the process's start time, which tells a reused pid apart
    returncode: int | None = None  # once the ``sweep run`` that started it saw it end

    def to_json(self) -> dict[str, Any]:
        """The fields that are set; ``cancelled`` only once it is true."""
        return {key: value for key, value in asdict(self).items() if value is not None and value is not False}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobHandle:
        """A handle as ``job.json`` holds it; keys this version does not know are left out.

        TypeError or ValueError for one that is not a handle: a field of another type (``"cancelled":
        "no"`` is not a cancel, ``"host": ["vm"]`` no host), or a SLURM handle whose ``job_id`` is not a
        job's (none: ``sacct -j None`` failed every ``sweep status``; ``"12,13"`` would be two jobs).
        """
        handle = cls(
            executor=_typed(str, data.get("executor")),
            submitted_at=_optional(float, data.get("submitted_at")),
            cancelled=_typed(bool, data.get("cancelled", False)),
            job_id=_optional(str, data.get("job_id")),
            folder=_optional(str, data.get("folder")),
            pid=_optional(int, data.get("pid")),
            host=_optional(str, data.get("host")),
            start_ticks=_optional(str, data.get("start_ticks")),
            returncode=_optional(int, data.get("returncode")),
        )
        if handle.executor == "slurm" and not re.fullmatch(r"[0-9]+(_[0-9]+)?", handle.job_id or ""):
            raise ValueError(f"job_id {handle.job_id!r} is not a SLURM job's id (123, or 123_4)")
        return handle


def _typed(kind: type[T], value: Any) -> T:
    """``value`` if JSON gave it as a ``kind`` (a float may be written as an int; a bool is no number),
    else TypeError."""
    accepted = (int, float) if kind is float else kind
    if isinstance(value, bool) is not (kind is bool) or not isinstance(value, accepted):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return kind(value)  # type: ignore[call-arg]


def _optional(kind: type[T], value: Any) -> T | None:
    return None if value is None else _typed(kind, value)
