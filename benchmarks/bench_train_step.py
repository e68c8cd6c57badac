"""Seconds per training step of the whole detector, measured in one process: what the GPU does per step
on one input shape, what a first-seen shape costs, and what multi-scale training really runs at.

The same pieces as ``python -m mimdet.train`` (the config, detectron2's data loader with the config's
multi-scale recipe on a synthetic COCO-format dataset, ``AMPTrainer``/``SimpleTrainer`` and the config's
optimizer), without start-up costs between cases, so that one GPU session measures every case. Each
step is synchronised before and after (on CUDA) and timed on its own.

Sections (``--sections``, comma-separated; all by default):

- ``fixed``: one batch repeated: the step at a fixed shape, per attention back-end list.
- ``multiscale``: fresh models over the real loader: median over steps 20-60, over steps on a new and on
  a repeated batch shape, and the shapes met; the canvas off and on (``canvas_multiple``), PyTorch's
  kernel order on Hopper (cuDNN first) against ``flash,efficient,math``.
- ``ratios``: the step at one fixed shape and ``--big-batch`` images per train ratio 0.125..1.0, and
  per decoder count 1/2/4/8 (ratio 0.5), with the peak memory of the step.
- ``inference``: seconds per image, batch 1, at the test shape, ratio 1.0.
- ``profile``: the host operators that take the longest in 5 fixed-shape steps (to a text file).

GPU (ViT-B, AMP as the config sets it; ~4 minutes on an H200):

    python benchmarks/bench_train_step.py --out benchmarks/results/train_step_gpu

CPU rehearsal (the tiny config; the figures say nothing about a GPU):

    python benchmarks/bench_train_step.py --config experiments/tiny_mimdet.py --quick \\
        --out /tmp/train_step_cpu train.device=cpu train.amp.enabled=False
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from bench_detector_runs import data_overrides
from detectron2.config import instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer
from detectron2.utils.events import EventStorage
from omegaconf import DictConfig
from torch import nn

from mimdet.data.random_batch import random_inputs
from mimdet.data.synthetic import make_synthetic_coco
from mimdet.run.config import build_model
from mimdet.run.environment import quiet_third_party_warnings
from mimdet.run.resolve import resolve_run
from mimdet.train import register_datasets

SECTIONS = ("multiscale", "fixed", "ratios", "inference", "profile")  # the default order
OURS = ("flash", "efficient", "math")
CUDNN_FIRST = ("cudnn", "flash", "efficient", "math")  # what PyTorch prefers on Hopper GPUs
BACKBONE = "model.backbone.bottom_up"


@dataclass(frozen=True)
class Sizes:
    """How long each section runs; ``--quick`` shrinks them for a CPU rehearsal."""

    warmup: int = 5
    fixed_steps: int = 20
    multiscale_steps: int = 60
    window: tuple[int, int] = (20, 60)  # steps whose median is "multi-scale s/iter"
    ratio_steps: int = 8
    inference_images: int = 20
    fixed_hw: tuple[int, int] = (800, 1216)  # COCO's most common test shape, padded to 32


QUICK = Sizes(warmup=1, fixed_steps=3, multiscale_steps=8, window=(3, 8), ratio_steps=2, inference_images=3)


@dataclass
class Bench:
    """The config, the device and the synthetic data every case shares; results collected in ``rows``."""

    config: str
    overrides: list[str]
    sizes: Sizes
    big_batch: int
    rows: list[dict] = field(default_factory=list)

    def cfg(self, *extra: str) -> DictConfig:
        return resolve_run(self.config, [*self.overrides, *extra]).cfg

    @property
    def cuda(self) -> bool:
        return str(self.cfg().train.device).startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def report(self, section: str, case: str, **figures: object) -> None:
        row = {"section": section, "case": case, **figures}
        self.rows.append(row)
        text = "  ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(f"[{section}] {case:<34} {text}", flush=True)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def make_trainer(
    bench: Bench, extra: list[str], batches: Iterator[list[dict]]
) -> tuple[SimpleTrainer, nn.Module]:
    """A fresh model and optimizer from the config, stepping over ``batches``."""
    cfg = bench.cfg(*extra)
    torch.manual_seed(0)
    model = build_model(cfg).to(cfg.train.device).train()
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    trainer_class = AMPTrainer if cfg.train.amp.enabled else SimpleTrainer
    return trainer_class(model, batches, optimizer), model


def timed_steps(
    bench: Bench, trainer: SimpleTrainer, steps: int, shapes: list[tuple] | None = None
) -> list[float]:
    """Seconds of each step (synchronised); each step's feature shape into ``shapes``."""
    model = trainer.model
    hook = None
    if shapes is not None:
        # the finest feature map's shape: what every layer after the padding (a canvas included) works at
        hook = model.backbone.register_forward_hook(
            lambda _m, _args, features: shapes.append(tuple(next(iter(features.values())).shape))
        )
    times = []
    with EventStorage(0) as trainer.storage:
        for index in range(steps):
            trainer.iter = index
            bench.sync()
            start = time.perf_counter()
            trainer.run_step()
            bench.sync()
            times.append(time.perf_counter() - start)
    if hook is not None:
        hook.remove()
    return times


def repeat(batch: list[dict]) -> Iterator[list[dict]]:
    while True:
        yield batch


def fixed_batch(bench: Bench, size: int) -> list[dict]:
    classes = int(bench.cfg().model.roi_heads.num_classes)
    return random_inputs([bench.sizes.fixed_hw] * size, num_classes=classes, instances_per_image=8)


def fixed_step(bench: Bench, extra: list[str], size: int = 2) -> tuple[float, int | None]:
    """Median seconds of a step on one repeated batch, and the peak CUDA memory of those steps."""
    trainer, model = make_trainer(bench, extra, repeat(fixed_batch(bench, size)))
    timed_steps(bench, trainer, bench.sizes.warmup)
    if bench.cuda:
        torch.cuda.reset_peak_memory_stats()
    times = timed_steps(bench, trainer, bench.sizes.fixed_steps)
    peak = torch.cuda.max_memory_allocated() if bench.cuda else None
    del trainer, model
    _free(bench)
    return statistics.median(times), peak


def section_fixed(bench: Bench) -> None:
    for name, backends in [("attention flash,efficient,math", OURS), ("attention cudnn first", CUDNN_FIRST)]:
        seconds, _ = fixed_step(bench, [f"{BACKBONE}.attention={list(backends)}"])
        bench.report("fixed", name, batch=2, hw=bench.sizes.fixed_hw, s_per_iter=seconds)


def section_multiscale(bench: Bench) -> None:
    sizes = bench.sizes
    for name, extra in [
        ("canvas off, cudnn first", [f"{BACKBONE}.attention={list(CUDNN_FIRST)}"]),
        ("canvas off", [f"{BACKBONE}.attention={list(OURS)}"]),
        ("canvas 128", [f"{BACKBONE}.attention={list(OURS)}", f"{BACKBONE}.canvas_multiple=128"]),
        ("canvas 256", [f"{BACKBONE}.attention={list(OURS)}", f"{BACKBONE}.canvas_multiple=256"]),
    ]:
        cfg = bench.cfg(*extra)
        loader = iter(instantiate(cfg.dataloader.train))
        trainer, model = make_trainer(bench, extra, loader)
        shapes: list[tuple] = []
        times = timed_steps(bench, trainer, sizes.multiscale_steps, shapes)
        seen: set[tuple] = set()
        new, repeated = [], []
        for index, (seconds, shape) in enumerate(zip(times, shapes, strict=True)):
            if index >= sizes.warmup:
                (repeated if shape in seen else new).append(seconds)
            seen.add(shape)
        bench.report(
            "multiscale",
            name,
            batch=int(cfg.dataloader.train.total_batch_size),
            median_window=statistics.median(times[sizes.window[0] : sizes.window[1]]),
            new_shape=statistics.median(new) if new else None,
            repeated_shape=statistics.median(repeated) if repeated else None,
            new_steps=len(new),
            shapes=len(seen),
        )
        del trainer, model, loader
        _free(bench)


def section_ratios(bench: Bench) -> None:
    attention = f"{BACKBONE}.attention={list(OURS)}"
    cases = [(f"r={r}, 4 dec", [f"{BACKBONE}.train_sample_ratio={r}"]) for r in (0.125, 0.25, 0.5, 0.75, 1.0)]
    cases += [(f"r=0.5, {n} dec", [f"{BACKBONE}.num_decoders={n}"]) for n in (1, 2, 8)]
    for name, extra in cases:
        try:
            seconds, peak = fixed_step(bench, [attention, *extra], size=bench.big_batch)
        except torch.OutOfMemoryError:
            bench.report("ratios", name, batch=bench.big_batch, error="out of memory")
            _free(bench)
            continue
        bench.report("ratios", name, batch=bench.big_batch, s_per_iter=seconds, peak_gib=_gib(peak))


def section_inference(bench: Bench) -> None:
    cfg = bench.cfg(f"{BACKBONE}.attention={list(OURS)}")
    torch.manual_seed(0)
    model = build_model(cfg).to(cfg.train.device).eval()
    (image,) = fixed_batch(bench, 1)
    inputs = [{"image": image["image"], "height": image["height"], "width": image["width"]}]
    amp = bool(cfg.train.amp.enabled) and bench.cuda
    times = []
    with torch.no_grad(), torch.autocast("cuda", enabled=amp):
        for index in range(bench.sizes.warmup + bench.sizes.inference_images):
            bench.sync()
            start = time.perf_counter()
            model(inputs)
            bench.sync()
            if index >= bench.sizes.warmup:
                times.append(time.perf_counter() - start)
    bench.report(
        "inference", "ratio 1.0, batch 1", hw=bench.sizes.fixed_hw, s_per_image=statistics.median(times)
    )
    del model
    _free(bench)


def section_profile(bench: Bench, out: Path) -> None:
    trainer, _model = make_trainer(
        bench, [f"{BACKBONE}.attention={list(OURS)}"], repeat(fixed_batch(bench, 2))
    )
    timed_steps(bench, trainer, bench.sizes.warmup)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if bench.cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profiler:
        timed_steps(bench, trainer, 5)
    table = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
    if bench.cuda:
        table += "\n\n" + profiler.key_averages().table(sort_by="self_cuda_time_total", row_limit=25)
    (out / "profile.txt").write_text(table)
    print(f"[profile] 5 fixed-shape steps -> {out / 'profile.txt'}", flush=True)
    del trainer, _model
    _free(bench)


def _gib(value: int | None) -> float | None:
    return None if value is None else value / 2**30


def _free(bench: Bench) -> None:
    if bench.cuda:
        torch.cuda.empty_cache()


def device_facts(bench: Bench) -> dict:
    facts = {
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if bench.cuda:
        facts["gpu"] = torch.cuda.get_device_name()
    facts["config"], facts["overrides"] = bench.config, bench.overrides
    return facts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="experiments/mimdet_vit_base.py")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"some of {', '.join(SECTIONS)}")
    parser.add_argument("--big-batch", type=int, default=8, help="batch of the ratio and decoder cases")
    parser.add_argument("--quick", action="store_true", help="few steps: a rehearsal, not a measurement")
    parser.add_argument("--fixed-size", default="800,1216", help="H,W of the fixed-shape batches")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json and profile.txt")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides for every case")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",")]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}: expected some of {', '.join(SECTIONS)}")
    quiet_third_party_warnings()
    args.out.mkdir(parents=True, exist_ok=True)
    data = make_synthetic_coco(
        Path(tempfile.mkdtemp()) / "data", num_train=48, num_val=2, image_size=1024
    ).root
    overrides = data_overrides(data) + ["dataloader.train.total_batch_size=2", "train.mae_checkpoint=''"]
    fixed_hw = tuple(int(side) for side in args.fixed_size.split(","))
    sizes = dataclasses.replace(QUICK if args.quick else Sizes(), fixed_hw=fixed_hw)
    bench = Bench(args.config, overrides + args.overrides, sizes, args.big_batch)
    register_datasets(bench.cfg())
    print(json.dumps(device_facts(bench)), flush=True)
    runners: dict[str, Callable[[], None]] = {
        "fixed": lambda: section_fixed(bench),
        "multiscale": lambda: section_multiscale(bench),
        "ratios": lambda: section_ratios(bench),
        "inference": lambda: section_inference(bench),
        "profile": lambda: section_profile(bench, args.out),
    }
    for section in sections:
        started = time.perf_counter()
        runners[section]()
        print(f"[{section}] done in {time.perf_counter() - started:.0f} s", flush=True)
        payload = {"meta": device_facts(bench), "rows": bench.rows}
        (args.out / "results.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
