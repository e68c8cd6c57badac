"""What a plan will cost before it runs, for ``sweep plan``: GPU-hours and peak memory at batch 1 per run.

Each figure says where it comes from:

- ``measured``: the store's records. A training that already has a record gives its own wall time and
  memory; otherwise completed trainings of the same variant (model and width, sampling, training ratio,
  decoders, FPN inputs, training data) on the same kind of device give the median of their seconds per
  iteration times the planned iterations, and the median of their peak memory.
- ``paper``: the paper's training times on 32 V100 (Table 2 per training ratio, Table 3 per decoder
  count, Table 4 for the window rows: the ``cost`` of each ``mimdet.paper.tables.PAPER_TABLES`` entry)
  and memory at batch 1, for the ViT-B variants it trained, scaled from its 36-epoch schedule to the
  planned iterations. The paper prints ``oom`` for ratio 1.0: that memory is None with a note.

A figure neither source has is None with a note saying why. Evaluations are not costed: records keep no
evaluation time and the paper gives none, so the totals are the trainings'.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
from dataclasses import dataclass
from typing import Any, Literal

from mimdet.paper.tables import LABEL_COLUMN, PAPER_TABLES, matches
from mimdet.record.schema import RunRecord, Variant
from mimdet.run.resolve import RunFacts, RunFactsError
from mimdet.run.schedule import iterations

from .config_cache import run_facts
from .expand import SweepPlan
from .runs import RunSpec, Stage
from .store import Store

Source = Literal["measured", "paper"]

PAPER_GPUS = 32  # 4 nodes x 8 V100
PAPER_ITERATIONS = iterations(36, 64)  # 36 epochs at batch 64: the schedule of the paper's times
GB = 2**30
_VIT_B = (768, 12)  # (embed_dim, depth) of the paper's ablations


@dataclass(frozen=True)
class Figure:
    """One number and where it comes from; ``value`` None where no source has it (``note`` says why)."""

    value: float | None
    source: Source | None
    note: str = ""


_NONE = Figure(None, None)


@dataclass(frozen=True)
class RunEstimate:
    """One run's GPU-hours and peak memory (GB at batch 1), each with its source."""

    run_id: str
    stage: Stage
    gpu_hours_figure: Figure
    memory_figure: Figure

    @property
    def gpu_hours(self) -> float | None:
        return self.gpu_hours_figure.value

    @property
    def memory_gb(self) -> float | None:
        return self.memory_figure.value

    @property
    def source(self) -> str:
        """``measured``, ``paper``, ``measured+paper`` (time from one, memory from the other) or ''."""
        found = [f.source for f in (self.gpu_hours_figure, self.memory_figure) if f.source is not None]
        return "+".join(dict.fromkeys(found))

    @property
    def note(self) -> str:
        notes = dict.fromkeys(f.note for f in (self.gpu_hours_figure, self.memory_figure) if f.note)
        return "; ".join(notes)


@dataclass(frozen=True)
class Estimate:
    """Per-run figures by run id, in plan order, and totals over the runs that have one."""

    runs: dict[str, RunEstimate]

    @property
    def total_gpu_hours(self) -> float:
        return sum(r.gpu_hours for r in self.runs.values() if r.gpu_hours is not None)

    @property
    def peak_memory(self) -> Figure:
        """The largest batch-1 memory of any run, with that figure's source."""
        known = [r.memory_figure for r in self.runs.values() if r.memory_figure.value is not None]
        return max(known, key=lambda f: f.value or 0.0, default=_NONE)

    @property
    def peak_memory_gb(self) -> float | None:
        return self.peak_memory.value

    @property
    def unknown(self) -> list[str]:
        """Trainings whose GPU-hours neither the store nor the paper gives (left out of the total)."""
        return [r.run_id for r in self.runs.values() if r.stage == "train" and r.gpu_hours is None]


def estimate(plan: SweepPlan, store: Store) -> Estimate:
    """Figures for every run of ``plan``, from ``store``'s records where it has them, else the paper."""
    similar = _SimilarRuns(store)
    return Estimate(runs={run.run_id: _estimate_run(run, store, similar) for run in plan.runs})


def _estimate_run(run: RunSpec, store: Store, similar: _SimilarRuns) -> RunEstimate:
    if run.stage == "eval":
        note = "evaluations are not costed: records keep no evaluation time, the paper gives none"
        return RunEstimate(run.run_id, run.stage, Figure(None, None, note), Figure(None, None, note))
    try:
        facts = run_facts(run.config_file, run.overrides)
    except RunFactsError:  # not a detectron2 training config this project knows: no estimate, not a failure
        unreadable = Figure(None, None, "the config's backbone and schedule cannot be read")
        return RunEstimate(run.run_id, run.stage, unreadable, unreadable)
    own = store.record(run.run_id)
    if own is not None and _is_own_timed_record(own, facts):
        hours, memory = _own_figures(own)
    else:
        hours, memory = similar.figures(facts, gpu=run.resources.gpus > 0)
    if hours.value is None or memory.value is None:
        paper_hours, paper_memory = _paper_figures(facts)
        hours = hours if hours.value is not None else paper_hours
        memory = memory if memory.value is not None else paper_memory
    return RunEstimate(run.run_id, run.stage, hours, memory)


def _is_own_timed_record(record: RunRecord, facts: RunFacts) -> bool:
    """A completed, timed record of this very training: one in the run's folder that trained another variant
    or on other data (copied or moved there; ``sweep status`` calls it failed) measured that one."""
    return (
        record.status == "completed"
        and record.cost.train_wall_time_s is not None
        and _training_key(record.variant) == _training_key(facts.variant)
        and record.dataset.train == facts.dataset_train
    )


def _own_figures(record: RunRecord) -> tuple[Figure, Figure]:
    wall_h = (record.cost.train_wall_time_s or 0.0) / 3600
    gpus = record.hardware.gpu_count
    note = f"this run's record ({wall_h:.2f} h on {_hardware(record)})"
    hours = Figure(wall_h * gpus, "measured", note)
    peak = record.cost.peak_mem_bytes_bs1
    memory = Figure(peak / GB, "measured", note) if peak is not None else _NONE
    return hours, memory


def _hardware(record: RunRecord) -> str:
    hw = record.hardware
    return f"{hw.gpu_count} x {hw.gpu_model or 'GPU'}" if hw.gpu_count else f"CPU ({hw.cpu_model or '?'})"


# --- measured: this store's completed trainings --------------------------------------------------------


def _training_key(variant: Variant) -> tuple[Any, ...]:
    """A training's variant without its test-time ratio (its evaluations choose that), hashable."""
    return dataclasses.astuple(dataclasses.replace(variant, test_sample_ratio=0.0))


class _SimilarRuns:
    """The store's completed trainings by variant, read once and only if a run needs them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @functools.cached_property
    def by_key(self) -> dict[tuple[tuple[Any, ...], str, bool], list[RunRecord]]:
        groups: dict[tuple[tuple[Any, ...], str, bool], list[RunRecord]] = {}
        runs = self.store.root / "runs"
        for folder in sorted(runs.iterdir()) if runs.is_dir() else []:
            record = self.store.record(folder.name)
            if record is None or record.stage != "train" or record.status != "completed":
                continue
            key = (_training_key(record.variant), record.dataset.train, record.hardware.device == "cuda")
            groups.setdefault(key, []).append(record)
        return groups

    def figures(self, facts: RunFacts, *, gpu: bool) -> tuple[Figure, Figure]:
        records = self.by_key.get((_training_key(facts.variant), facts.dataset_train, gpu), [])
        if not records:
            return _NONE, _NONE
        timed = [(r, seconds) for r in records if (seconds := _seconds_per_iter(r)) is not None]
        note = f"median of {len(records)} similar run(s) in the store, at {facts.iterations} iterations"
        hours = _NONE
        if timed:
            wall = statistics.median(seconds for _, seconds in timed)
            gpu_seconds = statistics.median(seconds * r.hardware.gpu_count for r, seconds in timed)
            timing = f"{note} ({wall:.3g} s/iteration on {_hardware(timed[0][0])})"
            hours = Figure(gpu_seconds * facts.iterations / 3600, "measured", timing)
        peaks = [r.cost.peak_mem_bytes_bs1 for r in records if r.cost.peak_mem_bytes_bs1 is not None]
        memory = Figure(statistics.median(peaks) / GB, "measured", note) if peaks else _NONE
        return hours, memory


def _seconds_per_iter(record: RunRecord) -> float | None:
    """Wall-clock seconds per iteration: measured, else the run's time over its iterations."""
    if record.cost.sec_per_iter is not None:
        return record.cost.sec_per_iter
    if record.cost.train_wall_time_s is not None and record.iterations > 0:
        return record.cost.train_wall_time_s / record.iterations
    return None


# --- paper: the cost each table of PAPER_TABLES gives --------------------------------------------------


def _paper_figures(facts: RunFacts) -> tuple[Figure, Figure]:
    variant = facts.variant
    if variant.model != "mimdet" or (variant.embed_dim, variant.depth) != _VIT_B:
        note = "no record of this variant in the store; the paper costs only MIMDet ViT-B (Tables 2-4)"
        return Figure(None, None, note), Figure(None, None, note)
    row = _paper_row(variant)
    if row is None:
        note = "no record of this variant in the store, and the paper has no cost for it"
        return Figure(None, None, note), Figure(None, None, note)
    table, hours, memory = row
    scale = facts.iterations / PAPER_ITERATIONS
    scaled = f", scaled to {facts.iterations} iterations" if facts.iterations != PAPER_ITERATIONS else ""
    gpu_hours = Figure(
        hours * PAPER_GPUS * scale, "paper", f"{table}: {hours} h on {PAPER_GPUS} V100{scaled}"
    )
    if memory is None:
        return gpu_hours, Figure(None, "paper", f"{table} gives no memory for this variant")
    if memory == "oom":
        return gpu_hours, Figure(None, "paper", f"{table}: out of memory at batch 1")
    return gpu_hours, Figure(float(memory), "paper", table)


def _paper_row(variant: Variant) -> tuple[str, float, Any] | None:
    """(source, training hours on 32 V100, memory GB at batch 1 or 'oom' or None) for a paper variant:
    the first table in ``PAPER_TABLES`` whose cost covers it and has a row for its cell."""
    training = dataclasses.asdict(variant)
    for table in PAPER_TABLES.values():
        if table.cost is None or not table.costs(training):
            continue
        for row in _paper_rows(table.cost.csv):
            if matches(training, table.cell(row)):
                source = f"{table.title} {row[LABEL_COLUMN]}" if table.labelled_rows else table.title
                return source, float(row["train_time_h"]), row.get("train_mem_gb_bs1")
    return None


@functools.cache
def _paper_rows(csv: str) -> list[dict[str, Any]]:
    from mimdet.paper.published import load_paper_csv  # pandas: only when a run needs the paper's figures

    return [{str(k): v for k, v in row.items()} for row in load_paper_csv(csv).to_dict("records")]
