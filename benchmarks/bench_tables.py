"""Time rendering all four paper tables, Markdown and LaTeX, from 10,000 record rows (target: < 2 s).

    .venv/bin/python benchmarks/bench_tables.py [--rows 10000] [--repeat 3]

The rows are real records (``RunRecord`` through ``record_to_row``) spread over every cell
of Tables 1-4, with repeated runs per cell and some failed ones, as a long-lived results store has them.
Not a test: it prints the figure.
"""

from __future__ import annotations

import argparse
import random
import time

import pandas as pd

from analysis.tables import PAPER_DECODERS, PAPER_RATIOS, TABLES
from mimdet.record.examples import example_record, example_variant
from mimdet.record.schema import Cost, Hardware, ParamCounts, record_to_row

# (model, sampling, fpn_inputs, num_decoders, train ratio, test ratio) of every cell in Tables 1-4
CELLS = sorted(
    {("mimdet", "random", "hybrid", 4, t, i) for t in PAPER_RATIOS for i in PAPER_RATIOS if i >= t}
    | {("mimdet", "random", "hybrid", n, 0.5, 1.0) for n in PAPER_DECODERS}
    | {("mimdet", "window", "hybrid", 0, 1.0, 1.0), ("mimdet", "window", "vit", 0, 1.0, 1.0)}
    | {("benchmarking", "all", "vit", 0, 1.0, 1.0)}
)


def make_rows(count: int, seed: int = 0) -> pd.DataFrame:
    """``count`` record rows over ``CELLS``; one in ten failed, trainings at test ratio 1.0."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        model, sampling, fpn_inputs, decoders, train, test = CELLS[i % len(CELLS)]
        failed = rng.random() < 0.1
        training = test == 1.0
        ap = None if failed else round(rng.uniform(20, 55), 2)
        record = example_record(
            f"run{i:06d}",
            stage="train" if training else "eval",
            parent_run_id=None if training else f"parent{i:06d}",
            status="failed" if failed else "completed",
            variant=example_variant(
                model=model,
                sampling=sampling,
                train_sample_ratio=train,
                test_sample_ratio=test,
                num_decoders=decoders,
                fpn_inputs=fpn_inputs,
            ),
            box=ap,
            mask=ap,
            created_at=f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:00:00+00:00",
            overrides=[f"model.backbone.bottom_up.num_decoders={decoders}"],
            params=ParamCounts(118_000_000 + 3_000_000 * decoders, {"encoder": 85_000_000}),
            cost=Cost(
                rng.uniform(5e4, 1e5) if training else None,
                None,
                rng.randrange(10, 30) * 2**30 if training else None,
                "cuda_max_allocated" if training else None,
                None,
            ),
            hardware=Hardware("cuda", "NVIDIA H100", 8, None),
        )
        rows.append(record_to_row(record))
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3, help="the best of this many timings is reported")
    args = parser.parse_args()

    start = time.perf_counter()
    frame = make_rows(args.rows)
    print(f"generated {len(frame):,} record rows in {time.perf_counter() - start:.2f} s")

    best: dict[str, float] = {}
    for _ in range(args.repeat):
        for name in TABLES:
            for fmt in ("md", "latex"):
                start = time.perf_counter()
                TABLES[name](frame, fmt=fmt, with_paper=True)
                elapsed = time.perf_counter() - start
                best[f"{name} {fmt}"] = min(best.get(f"{name} {fmt}", elapsed), elapsed)
    for key, seconds in best.items():
        print(f"  {key:<14} {seconds * 1000:7.1f} ms")
    total = sum(best.values())
    verdict = "ok" if total < 2.0 else "over the 2 s target"
    print(f"all 4 tables x 2 formats from {len(frame):,} rows: {total:.3f} s ({verdict})")


if __name__ == "__main__":
    main()
