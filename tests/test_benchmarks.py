"""benchmarks/bench_detector_runs.py end to end on the CPU: real micro trainings through
``python -m mimdet.train`` (tiny config, 64 px synthetic images, 7 iterations), figures read from their
records, a failing case reported while the others are measured; and the paper ratios it prints."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests import REPO

BENCHMARKS = REPO / "benchmarks"
SCRIPT = BENCHMARKS / "bench_detector_runs.py"


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A benchmark script as a module (its sibling imports need benchmarks/ on the path)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_detector_runs_measure_cases_and_report_a_failing_one(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    command = [sys.executable, str(SCRIPT), "--config", "experiments/tiny_mimdet.py", "--iterations", "7"]
    command += ["--image-size", "64", "--work", str(tmp_path / "work"), "--json", str(out)]
    # dec=9 is a real failure inside the run: the MAE decoder has at most 8 blocks
    command += ["--cases", "r=0.5,r=1.0,dec=9", "dataloader.train.num_workers=0"]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {row["label"]: row for row in report["results"]}
    assert list(rows) == ["r=0.5", "r=1.0", "9 dec"]
    for label in ("r=0.5", "r=1.0"):
        row = rows[label]
        assert row["status"] == "completed" and row["error"] is None and row["iterations"] == 7
        assert row["sec_per_iter"] > 0 and row["peak_mem_bytes_bs1"] > 0
        assert row["peak_mem_kind"] == "cpu_peak_rss_delta"
    assert rows["r=1.0"]["time_ratio"] == 1.0 and rows["r=0.5"]["time_ratio"] > 0
    assert rows["r=0.5"]["paper_time_ratio"] == pytest.approx(20.3 / 31.0)
    assert rows["r=0.5"]["paper_memory"] == "0.70*" and rows["r=1.0"]["paper_memory"] == "oom"
    failed = rows["9 dec"]
    assert failed["status"] == "failed" and failed["sec_per_iter"] is None
    assert "num_decoders 9 is not a decoder count" in failed["error"]
    assert failed["paper_time_ratio"] is None and failed["time_ratio"] is None
    meta = report["meta"]
    assert meta["device"] == "cpu" and meta["gpu_model"] is None and meta["device_name"]
    assert meta["torch"] and meta["config"] == "experiments/tiny_mimdet.py" and meta["amp"] is False
    assert meta["iterations"] == 7 and meta["image_size"] == 64 and meta["date"]
    # one progress line per run; the table names the failure; checkpoints are gone, logs stay
    assert result.stdout.count("ran r") == 3
    (row,) = [line for line in result.stdout.splitlines() if line.startswith("9 dec ")]
    assert "failed: the model refuses its settings: num_decoders 9 is not a decoder count" in row, row
    work = tmp_path / "work"
    assert not list(work.glob("*/*.pth"))
    assert (work / "r0.5-dec4" / "run.log").is_file() and (work / "r0.5-dec4" / "log.txt").is_file()


def test_detector_runs_exit_non_zero_when_every_run_fails(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    command = [sys.executable, str(SCRIPT), "--config", "experiments/tiny_mimdet.py", "--iterations", "6"]
    command += [
        "--image-size",
        "64",
        "--work",
        str(tmp_path / "work"),
        "--json",
        str(out),
        "--cases",
        "dec=9",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [row["status"] for row in report["results"]] == ["failed"]
    assert report["meta"]["device"] == "cpu"  # from the failed run's record


def test_a_run_without_record_fails_with_the_logs_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _load("bench_detector_runs", monkeypatch)
    result = bench.run_case(tmp_path / "missing.py", tmp_path / "run", [])
    assert result.status == "failed" and result.record is None
    assert result.error.startswith("no record.json (exit 2): mimdet.train: error: config file not found")


def test_cases_parse_share_the_reference_run_and_reject_unknown_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bench = _load("bench_detector_runs", monkeypatch)
    cases = bench.parse_cases("ratios,decoders")
    assert [c.label for c in cases] == [
        *("r=0.125", "r=0.25", "r=0.5", "r=0.75", "r=1.0"),
        *("1 dec", "2 dec", "4 dec", "8 dec"),
    ]
    assert len({c.run_name for c in cases}) == 8  # r=0.5 and 4 decoders are one run
    assert [c.label for c in bench.parse_cases("r=1,r=1.0,dec=2")] == ["r=1.0", "2 dec"]
    with pytest.raises(ValueError, match="unknown case 'ratio'"):
        bench.parse_cases("ratio")
    traceback = "ModuleNotFoundError: Caught it in worker 0. " + "File x, line 1 " * 50 + "No module 'y'"
    shortened = bench.short_error(traceback)
    assert len(shortened) <= 160 and shortened.startswith("ModuleNotFoundError: Caught")
    assert shortened.endswith("No module 'y'") and bench.short_error("OOM") == "OOM"


def test_paper_cost_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    paper = _load("paper_costs", monkeypatch)
    assert paper.paper_time_ratio("ratio", 0.25) == pytest.approx(16.5 / 31.0)
    assert paper.paper_memory_ratio("ratio", 0.5) == pytest.approx(19.9 / 28.5)
    assert paper.paper_memory_label("ratio", 0.125) == "0.50*"
    assert paper.paper_out_of_memory("ratio", 1.0) and paper.paper_memory_ratio("ratio", 1.0) is None
    assert paper.paper_time_ratio("decoders", 4) == pytest.approx(20.3 / 15.5)
    assert paper.paper_memory_label("decoders", 8) == "2.39"
    assert paper.paper_time_ratio("ratio", 0.3) is None and paper.paper_memory_label("decoders", 3) == "—"


def test_cli_benchmark_store_holds_a_completed_record_of_every_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``bench_cli.py`` times ``sweep status`` and ``sweep table`` on: every run of its spec with a
    record the engine reads as completed (a store it misread would time the wrong work)."""
    bench = _load("bench_cli", monkeypatch)
    from sweeps.engine import statuses
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store

    spec, root = bench.write_store(tmp_path, 2)
    plan = expand(load_spec(spec))
    found = statuses(Store(root), plan.runs)
    assert len(plan.runs) == 80 and {status.state.value for status in found.values()} == {"completed"}
    assert load_spec(tmp_path / "table2-unbounded.yaml").max_runs == 5_000  # what older code reads


def test_host_sync_counts_split_a_tiny_training_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/bench_host_syncs.py: every section of the step dispatches ops; the backbone and the
    optimizer (its step counts stay on the host) wait for nothing, detectron2's heads do."""
    bench = _load("bench_host_syncs", monkeypatch)
    counter = bench.count_step("tiny_mimdet.py", [])
    assert all(counter.ops[section] > 0 for section in bench.SECTIONS)
    syncs = counter.syncs_by_section()
    assert syncs["backbone"] == syncs["optimizer step"] == 0
    assert syncs["rest of the detector"] > 0 and counter.project_syncs() == []
