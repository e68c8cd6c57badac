"""The paper's cost ratios (Tables 2 and 3) that the benchmarks print beside their measured ones.

The paper's costs are absolute (training hours on 32 V100s for the whole 36-epoch schedule, GB of memory
at batch 1) on hardware unlike ours, so only ratios within one table compare with what a benchmark
measures. Every benchmark that prints them must use the same reference rows, hence this one module
(used by ``bench_backbone.py`` and ``bench_detector_runs.py``):

- sample-ratio rows (Table 2, 4 decoders): time relative to r = 1.0; memory relative to r = 0.75, printed
  with ``*``, because the paper's r = 1.0 ran out of memory ("oom");
- decoder rows (Table 3, r = 0.5): time and memory relative to 1 decoder. Time comes from the table's
  hours: its printed 1.16x for 4 decoders disagrees with its own 20.3 h / 15.5 h = 1.31x.

Values the paper has no row for give ``None`` (label ``"—"``).
"""

from __future__ import annotations

from typing import Literal

from mimdet.paper.published import load_paper_csv

Group = Literal["ratio", "decoders"]

RATIO_TIME_REFERENCE = 1.0
RATIO_MEMORY_REFERENCE = 0.75  # the paper's r = 1.0 ran out of memory
DECODER_REFERENCE = 1

_TABLE2_COST = load_paper_csv("table2_cost").set_index("train_ratio")
_TABLE3 = load_paper_csv("table3").set_index("num_decoders")
_TIME_H: dict[Group, dict[float, float]] = {
    "ratio": {float(k): float(v) for k, v in _TABLE2_COST["train_time_h"].items()},
    "decoders": {float(k): float(v) for k, v in _TABLE3["train_time_h"].items()},
}
_MEM_GB: dict[Group, dict[float, float | None]] = {
    "ratio": {
        float(k): None if v == "oom" else float(v) for k, v in _TABLE2_COST["train_mem_gb_bs1"].items()
    },
    "decoders": {float(k): float(v) for k, v in _TABLE3["train_mem_gb_bs1"].items()},
}


def _reference(group: Group, kind: Literal["time", "memory"]) -> float:
    if group == "decoders":
        return DECODER_REFERENCE
    return RATIO_TIME_REFERENCE if kind == "time" else RATIO_MEMORY_REFERENCE


def paper_time_ratio(group: Group, value: float) -> float | None:
    """Training hours of the row ``value`` over the reference row's; None if the paper has no such row."""
    hours = _TIME_H[group]
    if float(value) not in hours:
        return None
    return hours[float(value)] / hours[_reference(group, "time")]


def paper_out_of_memory(group: Group, value: float) -> bool:
    """Whether the paper reports the row as out of memory (Table 2's r = 1.0)."""
    memory = _MEM_GB[group]
    return float(value) in memory and memory[float(value)] is None


def paper_memory_ratio(group: Group, value: float) -> float | None:
    """Batch-1 memory of the row over the reference row's; None if absent or out of memory."""
    memory = _MEM_GB[group].get(float(value))
    reference = _MEM_GB[group][_reference(group, "memory")]
    return None if memory is None or reference is None else memory / reference


def paper_memory_label(group: Group, value: float) -> str:
    """The memory ratio as printed: ``0.70*`` (relative to r = 0.75), ``oom``, ``1.18`` or ``—``."""
    if paper_out_of_memory(group, value):
        return "oom"
    ratio = paper_memory_ratio(group, value)
    if ratio is None:
        return "—"
    return f"{ratio:.2f}*" if group == "ratio" else f"{ratio:.2f}"
