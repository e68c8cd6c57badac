"""Time ``load_spec`` + ``expand`` on a generated 1,000-run spec (target: < 1 s).

    .venv/bin/python benchmarks/bench_plan.py [--ratios 10] [--seeds 10] [--repeat 3]

The spec crosses ``--ratios`` training ratios with ``--seeds`` training seeds (100 trainings) and gives
each training 3 inference ratios x 3 evaluation seeds through a filter (900 evaluations): 1,000 runs with
the defaults. The libraries a config file imports (detectron2's model zoo, timm: ~2 s, once per process)
are imported first and reported apart; the timed figure then includes loading the base config (once per
spec, for the override checks and for run identity) and every run id. Repeats reuse the loaded config.
Not a test: it prints the figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mimdet.run.config import load_config
from sweeps.expand import expand
from sweeps.spec import load_spec

SPEC = """\
name: bench-plan
base_config: experiments/tiny_mimdet.py
overrides: {{train.max_iter: 300}}
train:
  grid: product
  axes:
    model.backbone.bottom_up.train_sample_ratio: [{ratios}]
    train.seed: [{seeds}]
eval:
  axes:
    model.backbone.bottom_up.test_sample_ratio: [0.5, 0.75, 1.0]
    model.backbone.bottom_up.eval_seed: [0, 1, 2]
  filter: test_sample_ratio > 0 and eval_seed >= 0
"""


def write_spec(folder: Path, ratios: int, seeds: int) -> Path:
    values = ", ".join(str(round((i + 1) / ratios, 6)) for i in range(ratios))
    path = folder / "bench.yaml"
    path.write_text(SPEC.format(ratios=values, seeds=", ".join(str(s) for s in range(seeds))))
    return path


def timed(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    plan = expand(load_spec(path))
    return time.perf_counter() - start, len(plan.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratios", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = write_spec(Path(folder), args.ratios, args.seeds)
        start = time.perf_counter()
        load_config("experiments/tiny_benchmarking.py")  # imports what the base config imports
        print(f"one-off imports of the config's libraries: {time.perf_counter() - start:.3f} s")
        first, runs = timed(path)
        verdict = "ok" if first < 1.0 else "over the 1 s target"
        print(f"{runs:,} runs, load_spec + expand, base config loaded: {first:.3f} s ({verdict})")
        again = min(timed(path)[0] for _ in range(args.repeat))
        print(
            f"{runs:,} runs, load_spec + expand, config loaded before: {again:.3f} s (best of {args.repeat})"
        )


if __name__ == "__main__":
    main()
