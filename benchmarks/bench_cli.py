"""Wall time of the ``sweep`` commands as a user runs them (a fresh process each): ``plan`` of a generated
1,000-run grid (target < 1 s), ``status`` and ``table`` over a store of 10,000 records (target < 2 s).

    .venv/bin/python benchmarks/bench_cli.py [--repeat 5] [--code DIR ...] [--records 10000]

The 1,000-run spec is ``bench_plan.py``'s (100 trainings x 9 evaluations). The 10,000-run spec is a
Table 2 grid (4 training ratios x 250 seeds, each evaluated at 3 inference ratios x 3 seeds) and the store
holds a completed record for every run, written once per benchmark. Each ``--code`` folder is a checkout
whose ``cli``, ``sweeps`` and ``mimdet`` the commands import (``PYTHONPATH``): give an older one beside this
one to time before and after in one run; repeats alternate between them. Each checkout gets an empty config
cache (``$MIMDET_CACHE``, see ``sweeps.config_cache``); a command's first call fills it and is printed apart,
the figures are the medians of the others: wall time, and the CPU time of the process (user + system),
which a machine busy with other work changes less. Not a test: it prints the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_plan import write_spec

from mimdet.record.examples import example_record
from mimdet.record.schema import DatasetInfo
from sweeps.config_cache import run_facts
from sweeps.expand import expand
from sweeps.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
TABLE2 = """\
name: bench-status
table: table2
base_config: experiments/tiny_mimdet.py
{max_runs}overrides: {{train.max_iter: 300}}
train:
  axes:
    model.backbone.bottom_up.train_sample_ratio: [0.25, 0.5, 0.75, 1.0]
    train.seed: [{seeds}]
eval:
  axes:
    model.backbone.bottom_up.test_sample_ratio: [0.25, 0.5, 1.0]
    model.backbone.bottom_up.eval_seed: [0, 1, 2]
"""


def write_store(folder: Path, seeds: int) -> tuple[Path, Path]:
    """A Table 2 spec of ``seeds * 40`` runs and a store with a completed record of each."""
    seeds_text = ", ".join(str(s) for s in range(seeds))
    (folder / "table2-unbounded.yaml").write_text(TABLE2.format(seeds=seeds_text, max_runs=""))
    spec = folder / "table2.yaml"
    spec.write_text(TABLE2.format(seeds=seeds_text, max_runs=f"max_runs: {seeds * 40}\n"))
    root = folder / "store"
    for run in expand(load_spec(spec)).runs:
        facts = run_facts(run.config_file, run.overrides)  # as the run would record them: the engine checks
        record = example_record(
            run.run_id,
            stage=run.stage,
            parent_run_id=run.parent,
            variant=facts.variant,
            box=20.0 + 10 * facts.variant.test_sample_ratio,
            mask=22.0,
            created_at="2026-11-27T10:00:00+00:00",
            output_dir=str(root / "runs" / run.run_id),
            config_file=run.config_file,
            overrides=list(run.overrides),
            dataset=DatasetInfo(facts.dataset_train, facts.dataset_test),
            iterations=facts.iterations,
        )
        path = root / "runs" / run.run_id / "record.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record.to_dict()))
    return spec, root


def timed(code: Path, argv: list[str], cache: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``sweep ARGV`` in a new process running ``code``, with its own cache."""
    if "max_runs" not in (code / "sweeps" / "spec.py").read_text():  # older code: no bound, no key
        argv = [arg.replace("table2.yaml", "table2-unbounded.yaml") for arg in argv]
    command = "cli.main" if (code / "cli").is_dir() else "sweeps.cli"  # older code: the CLI in sweeps/
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONWARNINGS": "ignore", "MIMDET_CACHE": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", command, *argv], cwd=code, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed in {code}: {result.stderr.strip()[-500:]}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--records", type=int, default=10_000, help="runs of the status/table store (x40)")
    parser.add_argument("--code", type=Path, action="append", help="checkouts to time (default: this one)")
    args = parser.parse_args()
    codes = [path.resolve() for path in args.code or [REPO]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plan_spec = write_spec(folder, 10, 10)
        start = time.perf_counter()
        table_spec, root = write_store(folder, args.records // 40)
        print(f"store of {args.records:,} records written in {time.perf_counter() - start:.1f} s")
        commands = {
            "plan, 1,000 runs": ["plan", str(plan_spec), "--root", str(folder / "empty")],
            f"status, {args.records:,} records": ["status", str(table_spec), "--root", str(root)],
            f"table, {args.records:,} records": ["table", str(table_spec), "--root", str(root)],
        }
        targets = {"plan": 1.0, "status": 2.0, "table": 2.0}
        times: dict[tuple[str, Path], list[tuple[float, float]]] = {}
        for name, argv in commands.items():
            for index, code in enumerate(codes):
                wall, cpu = timed(code, argv, folder / f"cache{index}")
                print(f"{name:<24} first call {wall:6.2f} s wall, {cpu:5.2f} s CPU (fills the cache)  {code}")
            for _ in range(args.repeat):
                for index, code in enumerate(codes):
                    times.setdefault((name, code), []).append(timed(code, argv, folder / f"cache{index}"))
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(
            f"\nmedians of {args.repeat} calls after the first; {os.cpu_count()} CPUs, load average {load}:"
        )
        for (name, code), values in times.items():
            wall = statistics.median(wall for wall, _ in values)
            cpu = statistics.median(cpu for _, cpu in values)
            verdict = "ok" if wall < targets[name.split(",")[0]] else "over the target"
            print(f"  {name:<24} {wall:6.2f} s wall ({verdict}), {cpu:5.2f} s CPU  {code}")


if __name__ == "__main__":
    main()
