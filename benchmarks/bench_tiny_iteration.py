"""Whole-detector training iterations of the tiny MIMDet on the CPU, per train sample ratio.

One process, the same random batch (4 images of 256 px) for every ratio, measured after warm-up:
seconds per iteration (median) and the ratio to r=1.0.

    python benchmarks/bench_tiny_iteration.py [--iterations 10] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from detectron2.utils.events import EventStorage

from mimdet.data.random_batch import random_inputs
from mimdet.run.config import build_model
from mimdet.run.environment import cpu_model, quiet_third_party_warnings
from mimdet.run.resolve import resolve_run

RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)


def seconds_per_iteration(ratio: float, iterations: int) -> float:
    cfg = resolve_run("tiny_mimdet.py", [f"model.backbone.bottom_up.train_sample_ratio={ratio}"]).cfg
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs = random_inputs([(256, 256), (192, 256), (256, 192), (224, 256)], num_classes=5, seed=1)
    times = []
    with EventStorage(0):
        for step in range(iterations + 2):
            start = time.perf_counter()
            losses = model(inputs)
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            if step >= 2:  # warm-up
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--json", default="benchmarks/results/tiny_iteration.json")
    args = parser.parse_args()
    quiet_third_party_warnings()
    figures = {ratio: seconds_per_iteration(ratio, args.iterations) for ratio in RATIOS}
    threads = torch.get_num_threads()
    print(f"tiny MIMDet training iteration (batch 4, 256 px) on {cpu_model()}, {threads} threads")
    print(f"{'train ratio':>12}{'s/iter':>9}{'x r=1.0':>9}")
    for ratio, seconds in figures.items():
        print(f"{ratio:>12}{seconds:>9.3f}{seconds / figures[1.0]:>9.2f}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "threads": torch.get_num_threads()}
    out.write_text(json.dumps({"meta": meta, "sec_per_iter": figures}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
