"""Backbone cost vs sample ratio and decoder count (the paper's Tables 2 and 3), measured in one run.

For the ViT-B MIMDet backbone at 1024x1024, batch 1: forward+backward time, peak memory (CUDA: max
allocated; CPU: peak RSS rise) and FLOPs (``torch.utils.flop_counter``) for train ratios 0.125..1.0 (4
decoders) and for 1/2/4/8 decoders (ratio 0.5), each as a ratio to the reference (r=1.0 / 4 decoders,
resp. 1 decoder as in Table 3) beside the paper's ratios; and the Benchmarking ViT-B at the same size.

    python benchmarks/bench_backbone.py [--device cuda] [--size 1024] [--repeats 3] [--json out.json]

Prints a table and writes JSON. Not a test: figures depend on the machine (say which when quoting).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from paper_costs import paper_memory_label, paper_time_ratio  # benchmarks/paper_costs.py
from torch.utils.flop_counter import FlopCounterMode

from mimdet.modeling import BenchmarkingViT, MIMDetBackbone
from mimdet.run.cost import peak_rss_rise
from mimdet.run.environment import cpu_model

VIT_B: dict[str, Any] = dict(embed_dim=768, depth=12, num_heads=12, drop_path_rate=0.0, norm="BN")


def _one_step(backbone: torch.nn.Module, images: torch.Tensor) -> None:
    outputs = backbone(images)
    sum(o.float().mean() for o in outputs.values()).backward()
    backbone.zero_grad(set_to_none=True)


def _build(case: tuple[str, Any], size: int) -> torch.nn.Module:
    group, value = case
    torch.manual_seed(0)
    if group == "ratio":
        return MIMDetBackbone(**VIT_B, train_sample_ratio=value)
    if group == "decoders":
        return MIMDetBackbone(**VIT_B, num_decoders=value)
    return BenchmarkingViT(img_size=size, **VIT_B)


def _cpu_peak(case: tuple[str, object], size: int) -> int:
    """Peak RSS rise of one step in a fresh process: in a process that already ran bigger cases the
    allocator reuses freed memory, and the rise would read as zero."""
    backbone = _build(case, size).train()
    images = torch.randn(1, 3, size, size)
    return peak_rss_rise(lambda: _one_step(backbone, images))


def measure(case: tuple[str, object], size: int, device: str, repeats: int) -> dict[str, float]:
    """Median seconds of forward+backward, peak memory bytes and FLOPs of one step at batch 1."""
    backbone = _build(case, size).to(device).train()
    images = torch.randn(1, 3, size, size, device=device)
    _one_step(backbone, images)  # warm-up (allocator, kernels)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        _one_step(backbone, images)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        _one_step(backbone, images)
        memory = torch.cuda.max_memory_allocated()
    else:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            memory = pool.apply(_cpu_peak, (case, size))
    with FlopCounterMode(display=False) as counter:
        _one_step(backbone, images)
    return {"seconds": statistics.median(times), "memory_bytes": memory, "flops": counter.get_total_flops()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default="benchmarks/results/backbone.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    cases: list[tuple[str, str, object]] = [("ratio", f"r={r}", r) for r in (0.125, 0.25, 0.5, 0.75, 1.0)]
    cases += [("decoders", f"{n} dec", n) for n in (1, 2, 4, 8)]
    cases.append(("benchmarking", "Benchmarking ViT-B", None))
    results: list[dict[str, Any]] = []
    for group, label, value in cases:
        figures = measure((group, value), args.size, args.device, args.repeats)
        results.append({"group": group, "label": label, "value": value, **figures})
        print(f"measured {label}: {figures['seconds']:.3f} s", flush=True)
    by_label = {r["label"]: r for r in results}
    ref_ratio, ref_dec = by_label["r=1.0"], by_label["1 dec"]
    print(f"\nMIMDet ViT-B backbone, {args.size}x{args.size}, batch 1, forward+backward on {args.device}")
    columns = ("time s", 9), ("time x", 8), ("paper x", 9), ("mem MB", 9), ("mem x", 7), ("paper x", 9)
    print(
        f"{'case':<20}"
        + "".join(f"{name:>{width}}" for name, width in columns)
        + f"{'GFLOPs':>9}{'flops x':>9}"
    )
    for r in results:
        ref = ref_dec if r["group"] == "decoders" else ref_ratio
        paper_t, paper_m = float("nan"), ""
        if r["group"] in ("ratio", "decoders"):
            paper_t = paper_time_ratio(r["group"], r["value"]) or float("nan")
            paper_m = paper_memory_label(r["group"], r["value"])
        r["time_ratio"] = r["seconds"] / ref["seconds"]
        r["memory_ratio"] = r["memory_bytes"] / ref["memory_bytes"] if ref["memory_bytes"] else None
        r["flops_ratio"] = r["flops"] / ref["flops"]
        print(
            f"{r['label']:<20}{r['seconds']:>9.3f}{r['time_ratio']:>8.2f}{paper_t:>9.2f}"
            f"{r['memory_bytes'] / 2**20:>9.0f}{(r['memory_ratio'] or 0):>7.2f}{paper_m:>9}"
            f"{r['flops'] / 1e9:>9.1f}{r['flops_ratio']:>9.2f}"
        )
    print("ratio rows: relative to r=1.0; decoder rows: relative to 1 decoder (as Table 3); paper memory")
    print("ratios for sample ratios are relative to r=0.75 (*) since the paper's r=1.0 ran out of memory.")
    met = {
        "r=0.5 <= 0.60x": by_label["r=0.5"]["time_ratio"] <= 0.60,
        "r=0.25 <= 0.45x": by_label["r=0.25"]["time_ratio"] <= 0.45,
    }
    print("targets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in met.items()))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu_model()
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "device": args.device,
        "device_name": device_name,
        "size": args.size,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    out.write_text(json.dumps({"meta": meta, "results": results, "targets": met}, indent=2) + "\n")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
