"""What one whole-detector training step asks of the host, counted on the CPU: aten ops dispatched and
ops that would make the host wait for the GPU, split by where they come from.

A fixed-shape step on a GPU is host-bound (docs/benchmarks.md, "Where a fixed-shape step goes"): the
host launches ~2,900 kernels and waits on the GPU 92 times a step. This counts the same on the CPU, per
config, for one training step (``SimpleTrainer.run_step``, after one warm-up step) on a fixed random
batch, with ``mimdet.run.host_syncs.HostSyncCounter``. Sections: the backbone's forward (``bottom_up``),
the rest of the detector's forward (FPN, RPN, ROI heads, losses), the backward pass, the optimizer step,
and the trainer around them (the loss sum, ``zero_grad``, detectron2's metrics). The optimizer runs
``foreach``, as torch picks it on CUDA.

The counter treats every tensor as living on the GPU but the optimizer's step counts, which stay on the
CPU there too (AdamW, not ``capturable``): reading them makes no one wait.

    python benchmarks/bench_host_syncs.py [--configs tiny_mimdet.py,mimdet_vit_base.py] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from detectron2.config import instantiate
from detectron2.engine import SimpleTrainer
from detectron2.utils.events import EventStorage

from mimdet.data.random_batch import random_inputs
from mimdet.run.config import build_model
from mimdet.run.environment import quiet_third_party_warnings
from mimdet.run.host_syncs import HostSyncCounter
from mimdet.run.resolve import resolve_run

CONFIGS = ("tiny_mimdet.py", "mimdet_vit_base.py")
SIZES = [(256, 320), (224, 320)]  # batch 2: small images, one padded
SECTIONS = ("backbone", "rest of the detector", "backward", "optimizer step", "trainer")


def count_step(config: str, overrides: list[str]) -> HostSyncCounter:
    """The counts of one training step of ``config`` on the CPU, after one warm-up step."""
    cfg = resolve_run(config, ["train.device=cpu", "train.amp.enabled=False", *overrides]).cfg
    torch.manual_seed(0)
    model = build_model(cfg).train()
    cfg.optimizer.params.model = model
    cfg.optimizer.foreach = True
    optimizer = instantiate(cfg.optimizer)
    batch = random_inputs(SIZES, num_classes=int(cfg.model.roi_heads.num_classes), instances_per_image=8)
    trainer = SimpleTrainer(model, itertools.repeat(batch), optimizer)
    with EventStorage(0) as trainer.storage:
        trainer.run_step()  # warm-up: the optimizer makes its state
    steps = [state["step"] for state in optimizer.state.values()]
    counter = HostSyncCounter(default_section="trainer", host_tensors=steps)
    backbone = model.backbone.bottom_up
    backbone.forward = counter.filed("backbone", backbone.forward)
    model.forward = counter.filed("rest of the detector", model.forward)
    optimizer.step = counter.filed("optimizer step", optimizer.step)
    with EventStorage(1) as trainer.storage, counter:
        trainer.iter = 1
        trainer.run_step()
    return counter


def report(config: str, counter: HostSyncCounter) -> dict:
    syncs = counter.syncs_by_section()
    rows = {name: {"aten_ops": counter.ops[name], "host_syncs": syncs[name]} for name in SECTIONS}
    print(f"\n{config}: one training step, batch 2 at {SIZES}")
    print(f"  {'section':<22}{'aten ops':>10}{'host syncs':>12}")
    for name, row in rows.items():
        print(f"  {name:<22}{row['aten_ops']:>10,}{row['host_syncs']:>12,}")
    total_ops, total_syncs = sum(counter.ops.values()), len(counter.syncs)
    print(f"  {'total':<22}{total_ops:>10,}{total_syncs:>12,}")
    sites = counter.syncs_by_site()
    print("  where the host would wait (count, op, issuing line):")
    for site, count in sites.most_common():
        print(f"    {count:>4}  {site}")
    project = counter.project_syncs()
    print(f"  from this repository's code: {len(project)}")
    return {"sections": rows, "total": {"aten_ops": total_ops, "host_syncs": total_syncs}, "sites": sites}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config files")
    parser.add_argument("--json", type=Path, help="write the counts here too")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for every config")
    args = parser.parse_args()
    quiet_third_party_warnings()
    results = {
        config: report(config, count_step(config, args.overrides)) for config in args.configs.split(",")
    }
    if args.json:
        meta = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "sizes": SIZES}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
