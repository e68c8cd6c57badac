"""Whole-detector training cost vs sample ratio and decoders (the paper's Tables 2 and 3), from real runs.

Each case is one short training through the project's entry point (``python -m mimdet.train``) on a
synthetic COCO-format dataset, batch 1: train ratios 0.125..1.0 at 4 decoders and 1/2/4/8 decoders at
ratio 0.5 (r=0.5 / 4 decoders is one run, shared by both groups: 8 runs). The figures are the runs' own
``record.json`` (``mimdet.run.cost``): seconds per iteration after the warm-up iterations and the peak memory
of one iteration at batch 1 (CUDA: max allocated, weights included; CPU: rise of the peak RSS). They are
printed as ratios to the reference (r=1.0, resp. 1 decoder as in Table 3) beside the paper's ratios.
Nothing is measured here.

On a GPU machine (the ViT-B config with AMP, as that config sets on CUDA; 16 synthetic images of 1024 px
longer side, which the config's augmentations resize to COCO's 480-800 px shorter side; 25 iterations):

    python benchmarks/bench_detector_runs.py

CPU smoke run with the tiny config (~7 s per run; figures that say nothing about the paper's):

    python benchmarks/bench_detector_runs.py --config experiments/tiny_mimdet.py --iterations 15 \\
        --image-size 256 --json benchmarks/results/detector_runs_cpu_tiny.json dataloader.train.num_workers=0

``--cases`` picks a subset: ``ratios``, ``decoders``, ``r=X`` (ratio X, 4 decoders), ``dec=N`` (N
decoders, ratio 0.5), comma-separated. Trailing ``key=value`` overrides go to every run. A run that fails
(e.g. out of memory, as the paper's r=1.0) is reported as failed (its error shortened in the table,
whole in the JSON) and the others go on; the exit status is non-zero only if every run failed. Runs,
their logs and records stay under ``--work``; checkpoints are deleted once read. Writes JSON (default
``benchmarks/results/detector_runs_<device>.json``, ``<device>`` ``cpu`` or the GPU model, e.g.
``nvidia-h100-80gb-hbm3``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from paper_costs import Group, paper_memory_label, paper_memory_ratio, paper_time_ratio

from mimdet.data.synthetic import make_synthetic_coco
from mimdet.record.schema import RecordError, RunRecord, read_record
from mimdet.run.environment import quiet_third_party_warnings

REPO = Path(__file__).resolve().parents[1]
RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)
DECODERS = (1, 2, 4, 8)
RATIO_DECODERS = 4  # Table 2's decoder count
DECODER_RATIO = 0.5  # Table 3's train ratio
RATIO_KEY = "model.backbone.bottom_up.train_sample_ratio"
DECODERS_KEY = "model.backbone.bottom_up.num_decoders"
NUM_TRAIN, NUM_VAL = 16, 2
GIB = 2**30


@dataclass(frozen=True)
class Case:
    """One table row: a group and its value; the run is (train ratio, decoders)."""

    group: Group
    value: float

    @property
    def ratio(self) -> float:
        return self.value if self.group == "ratio" else DECODER_RATIO

    @property
    def decoders(self) -> int:
        return int(self.value) if self.group == "decoders" else RATIO_DECODERS

    @property
    def label(self) -> str:
        return f"r={float(self.value)}" if self.group == "ratio" else f"{int(self.value)} dec"

    @property
    def run_name(self) -> str:
        return f"r{float(self.ratio)}-dec{self.decoders}"


@dataclass
class RunResult:
    """What one run's record (or, without one, its log) says."""

    name: str
    output: Path
    status: str  # completed | failed
    error: str | None
    seconds: float
    record: RunRecord | None


def parse_cases(text: str) -> list[Case]:
    """``ratios``, ``decoders``, ``r=X``, ``dec=N``, comma-separated, in order, without repeats."""
    cases: list[Case] = []
    for token in (t.strip() for t in text.split(",")):
        if token == "ratios":
            cases += [Case("ratio", r) for r in RATIOS]
        elif token == "decoders":
            cases += [Case("decoders", n) for n in DECODERS]
        elif token.startswith("r="):
            cases.append(Case("ratio", float(token[2:])))
        elif token.startswith("dec="):
            cases.append(Case("decoders", int(token[4:])))
        else:
            raise ValueError(f"unknown case {token!r}: expected ratios, decoders, r=X or dec=N")
    return list(dict.fromkeys(cases))


def data_overrides(data: Path) -> list[str]:
    """Point both splits at the synthetic dataset under ``data`` (as tests/micro.py does)."""
    spelled = ",".join(
        f"bench_{split}:[{data}/annotations/instances_{split}.json,{data}/{split}]"
        for split in ("train", "val")
    )
    return [
        f"dataset_paths={{{spelled}}}",
        "dataloader.train.dataset.names=bench_train",
        "dataloader.test.dataset.names=bench_val",
    ]


def base_overrides(data: Path, iterations: int) -> list[str]:
    """Every run: the synthetic data, batch 1, a short schedule without evaluation or MAE weights."""
    return data_overrides(data) + [
        "dataloader.train.total_batch_size=1",
        f"train.max_iter={iterations}",
        f"train.checkpointer.period={iterations + 1}",
        "train.final_eval=False",
        "train.mae_checkpoint=''",
    ]


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "empty log"


def run_case(config: Path, output: Path, overrides: list[str]) -> RunResult:
    """One training through ``python -m mimdet.train``; its logs go to ``output/run.log``."""
    output.mkdir(parents=True, exist_ok=True)
    (output / "record.json").unlink(missing_ok=True)  # never read a previous run's record
    log = output / "run.log"
    command = [sys.executable, "-m", "mimdet.train", "--config-file", str(config), "--output", str(output)]
    start = time.perf_counter()
    with log.open("w") as log_file:
        returncode = subprocess.run(
            command + overrides, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT
        ).returncode
    seconds = time.perf_counter() - start
    record: RunRecord | None = None
    error: str | None = None
    try:
        record = read_record(output / "record.json")
    except RecordError as unreadable:  # e.g. a bad override, or the process was killed
        problem = "no record.json" if "no such file" in str(unreadable) else str(unreadable)
        error = f"{problem} (exit {returncode}): {_last_line(log)}"
    else:
        if record.status != "completed":
            error = record.error or f"exit {returncode}: {_last_line(log)}"
        elif returncode != 0:
            error = f"exit {returncode} after a completed record: {_last_line(log)}"
    for checkpoint in output.glob("*.pth"):  # ViT-B checkpoints are ~1.5 GB each
        checkpoint.unlink()
    (output / "last_checkpoint").unlink(missing_ok=True)
    status = "completed" if error is None else "failed"
    return RunResult(output.name, output, status, error, seconds, record)


def short_error(error: str | None, width: int = 160) -> str:
    """An error for one table line: its head and its tail (a flattened traceback ends with the cause)."""
    text = error or "unknown error"
    return text if len(text) <= width else f"{text[: width // 2]} ... {text[-(width // 2 - 5) :]}"


def _ratio(value: float | None, reference: float | None) -> float | None:
    return value / reference if value is not None and reference else None


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def rows(cases: list[Case], runs: dict[str, RunResult]) -> list[dict]:
    """One JSON row per case, with the ratios to its group's reference run and the paper's ratios."""
    reference = {"ratio": Case("ratio", 1.0).run_name, "decoders": Case("decoders", 1).run_name}
    figures = {}
    for name, result in runs.items():
        cost = result.record.cost if result.record and result.status == "completed" else None
        figures[name] = (cost.sec_per_iter, cost.peak_mem_bytes_bs1) if cost else (None, None)
    out = []
    for case in cases:
        result = runs[case.run_name]
        seconds, memory = figures[case.run_name]
        ref_seconds, ref_memory = figures.get(reference[case.group], (None, None))
        cost = result.record.cost if result.record else None
        out.append(
            {
                "group": case.group,
                "label": case.label,
                "value": case.value,
                "train_sample_ratio": case.ratio,
                "num_decoders": case.decoders,
                "run": result.name,
                "output_dir": str(result.output),
                "status": result.status,
                "error": result.error,
                "sec_per_iter": seconds,
                "sec_per_iter_repeated_shape": cost.sec_per_iter_repeated_shape if cost else None,
                "sec_per_iter_new_shape": cost.sec_per_iter_new_shape if cost else None,
                "batch_shapes": cost.batch_shapes if cost else None,
                "peak_mem_bytes_bs1": memory,
                "peak_mem_kind": cost.peak_mem_kind if cost else None,
                "iterations": result.record.iterations if result.record else None,
                "run_seconds": result.seconds,
                "time_ratio": _ratio(seconds, ref_seconds),
                "memory_ratio": _ratio(memory, ref_memory),
                "paper_time_ratio": paper_time_ratio(case.group, case.value),
                "paper_memory_ratio": paper_memory_ratio(case.group, case.value),
                "paper_memory": paper_memory_label(case.group, case.value),
            }
        )
    return out


def print_table(results: list[dict], title: str) -> None:
    print(f"\n{title}")
    columns = ("s/iter", 9), ("time x", 8), ("paper x", 9), ("mem GiB", 9), ("mem x", 7), ("paper x", 9)
    print(f"{'case':<12}" + "".join(f"{name:>{width}}" for name, width in columns))
    for r in results:
        if r["status"] != "completed":
            print(f"{r['label']:<12}  failed: {short_error(r['error'])}")
            continue
        memory = None if r["peak_mem_bytes_bs1"] is None else r["peak_mem_bytes_bs1"] / GIB
        print(
            f"{r['label']:<12}{_fmt(r['sec_per_iter'], '.3f'):>9}{_fmt(r['time_ratio'], '.2f'):>8}"
            f"{_fmt(r['paper_time_ratio'], '.2f'):>9}{_fmt(memory, '.3f'):>9}"
            f"{_fmt(r['memory_ratio'], '.2f'):>7}{r['paper_memory']:>9}"
        )
    print("ratio rows: relative to r=1.0; decoder rows: relative to 1 decoder (as Table 3); paper memory")
    print("ratios for sample ratios are relative to r=0.75 (*) since the paper's r=1.0 ran out of memory.")
    kinds = {r["peak_mem_kind"] for r in results if r["peak_mem_kind"]}
    if kinds:
        print(
            "memory: one iteration at batch 1, "
            + ", ".join(
                "CUDA max allocated (weights included)" if k == "cuda_max_allocated" else "CPU peak-RSS rise"
                for k in sorted(kinds)
            )
        )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def meta(
    args: argparse.Namespace, config: Path, amp: bool, batch: int, runs: list[RunResult], warmup: int
) -> dict:
    """Date, the device the runs ran on (from their records), versions and the settings."""
    completed = [r.record for r in runs if r.record is not None and r.status == "completed"]
    records = completed + [r.record for r in runs if r.record is not None and r.status != "completed"]
    source = records[0] if records else None
    hardware = source.hardware if source else None
    device = hardware.device if hardware else "unknown"
    on_cuda = hardware is not None and hardware.device == "cuda"
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": device,
        "device_name": (hardware.gpu_model if on_cuda else hardware.cpu_model) if hardware else None,
        "gpu_model": hardware.gpu_model if hardware else None,
        "cpu_model": hardware.cpu_model if hardware else None,
        "torch": source.versions.get("torch") if source else None,
        "python": platform.python_version(),
        "code_version": source.code_version if source else None,
        "config": str(config.relative_to(REPO)) if config.is_relative_to(REPO) else str(config),
        "iterations": args.iterations,
        "warmup_iterations": warmup,
        "batch_size": batch,
        "amp": amp and on_cuda,
        "image_size": args.image_size,
        "num_train_images": NUM_TRAIN,
        "num_val_images": NUM_VAL,
        "overrides": args.overrides,
        "work": str(args.work),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="experiments/mimdet_vit_base.py")
    parser.add_argument("--iterations", type=int, default=25, help="per run (> 5 warm-up iterations)")
    parser.add_argument("--image-size", type=int, default=1024, help="longer side of the synthetic images")
    parser.add_argument("--work", type=Path, default=None, help="runs and data (default: a temp dir)")
    parser.add_argument(
        "--json", type=Path, default=None, help="default: benchmarks/results/detector_runs_<device>.json"
    )
    parser.add_argument("--cases", default="ratios,decoders", help="ratios, decoders, r=X, dec=N")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="passed to every run")
    args = parser.parse_args(argv)
    quiet_third_party_warnings()  # before detectron2 and torch are imported
    from mimdet.run.config import resolve_config_path
    from mimdet.run.cost import WARMUP_ITERATIONS
    from mimdet.run.overrides import OverrideError
    from mimdet.run.resolve import resolve_run

    if args.iterations <= WARMUP_ITERATIONS:
        parser.error(f"--iterations must exceed the {WARMUP_ITERATIONS} warm-up iterations")
    try:
        cases = parse_cases(args.cases)
        config = resolve_config_path(args.config).resolve()
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="mimdet-detector-runs-"))).resolve()
    data = make_synthetic_coco(
        args.work / f"data-{args.image_size}",
        num_train=NUM_TRAIN,
        num_val=NUM_VAL,
        image_size=args.image_size,
    ).root
    common = base_overrides(data, args.iterations) + args.overrides
    try:  # fail here on a bad override, not once per run
        cfg = resolve_run(config, common).cfg
    except OverrideError as error:
        parser.error(str(error))
    amp = bool(cfg.train.amp.enabled)
    batch = int(cfg.dataloader.train.total_batch_size)  # 1 unless an override says otherwise
    runs_needed = len({case.run_name for case in cases})
    print(f"{len(cases)} cases in {runs_needed} runs of {config.name}, {args.iterations} iterations each")
    print(f"runs, their logs and records: {args.work}", flush=True)

    runs: dict[str, RunResult] = {}
    for case in cases:
        if case.run_name in runs:
            continue
        case_overrides = [f"{RATIO_KEY}={case.ratio}", f"{DECODERS_KEY}={case.decoders}"]
        result = run_case(config, args.work / case.run_name, common + case_overrides)
        runs[case.run_name] = result
        cost = result.record.cost if result.record else None
        if result.status == "completed" and cost:
            memory = _fmt(None if cost.peak_mem_bytes_bs1 is None else cost.peak_mem_bytes_bs1 / GIB, ".3f")
            figures = (
                f"{_fmt(cost.sec_per_iter, '.3f')} s/iter (repeated shape "
                f"{_fmt(cost.sec_per_iter_repeated_shape, '.3f')}, new shape "
                f"{_fmt(cost.sec_per_iter_new_shape, '.3f')}, {cost.batch_shapes} shapes), {memory} GiB"
            )
        else:
            figures = f"failed: {short_error(result.error)}"
        print(f"ran {case.run_name}: {figures} ({result.seconds:.0f} s)", flush=True)

    results = rows(cases, runs)
    info = meta(args, config, amp, batch, list(runs.values()), WARMUP_ITERATIONS)
    device = f"{info['device_name'] or 'no record'} ({info['device']}{', AMP' if info['amp'] else ''})"
    title = (
        f"MIMDet detector training, {info['config']}, batch {batch}, {args.iterations} iterations, synthetic "
        f"{args.image_size} px, on {device}"
    )
    print_table(results, title)
    device_slug = _slug(info["device_name"] or "") if info["device"] == "cuda" else info["device"]
    out = args.json or REPO / "benchmarks" / "results" / f"detector_runs_{device_slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": info, "results": results}, indent=2) + "\n")
    print(f"-> {out}")
    return 0 if any(r.status == "completed" for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
