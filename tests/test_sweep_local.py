"""The sweep engine end to end with the local executor: a micro Table 2 from nothing to a table.

Runs ``sweep`` as a user does (a subprocess), on the tiny config and an 8-image synthetic dataset.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mimdet.record.schema import read_record
from tests import REPO
from tests.micro import micro_dataset, micro_overrides, micro_settings

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def spec_text(data: Path, *, iterations: int = 4, train_ratios: str = "[0.5, 1.0]", extra: str = "") -> str:
    """A micro Table 2 spec: train ratios x inference ratios 0.5 and 1.0, upper triangle."""
    settings = {**micro_settings(data), "train.max_iter": iterations, "train.checkpointer.period": 2}
    overrides = yaml.safe_dump({"overrides": settings}, default_flow_style=False)
    return f"""
name: micro
table: table2
base_config: experiments/tiny_mimdet.py
{overrides}{extra}
train:
  axes:
    model.backbone.bottom_up.train_sample_ratio: {train_ratios}
eval:
  axes:
    model.backbone.bottom_up.test_sample_ratio: [0.5, 1.0]
  filter: test_sample_ratio >= train_sample_ratio
"""


def sweep(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
    )


def start_sweep_run(spec: Path, root: Path) -> subprocess.Popen[str]:
    """``sweep run`` in the background (its few lines of output kept for ``communicate``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "run", str(spec), "--root", str(root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def wait_for_file(root: Path, pattern: str, process: subprocess.Popen[str], timeout_s: float = 300) -> None:
    """Until a file matching ``pattern`` is in the store, while ``process`` still runs."""
    deadline = time.monotonic() + timeout_s
    while not list(root.glob(pattern)):
        assert process.poll() is None and time.monotonic() < deadline, f"no {pattern} in {root}"
        time.sleep(0.1)


def assert_a_plain_rerun_resumes(spec: Path, root: Path, training: Path, iterations: int) -> None:
    """A plain ``sweep run`` starts the cut-off training and its evaluation; the training resumes from
    its checkpoint (a second start past iteration 0) and nothing is lost or done twice."""
    second = sweep("run", str(spec), "--root", str(root))
    assert second.returncode == 0, second.stdout[-3000:]
    assert second.stdout.startswith(f"{spec}: 2 to start on local"), second.stdout[:300]
    starts = re.findall(r"Starting training from iteration (\d+)", (training / "log.txt").read_text())
    assert len(starts) == 2 and starts[0] == "0" and int(starts[1]) > 0, starts
    records = [read_record(path) for path in root.glob("runs/*/record.json")]
    assert sorted(r.stage for r in records) == ["eval", "train"]  # none lost, none twice
    assert all(r.status == "completed" for r in records)
    assert next(r for r in records if r.stage == "train").iterations == iterations


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return micro_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, data: Path) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("sweep")
    spec = folder / "micro.yaml"
    spec.write_text(spec_text(data))
    result = sweep("run", str(spec), "--root", str(folder / "results"), "--max-parallel", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return spec, folder / "results"


def test_run_completes_every_run_of_the_dag(finished: tuple[Path, Path]) -> None:
    _spec, root = finished
    records = [read_record(path) for path in sorted(root.glob("runs/*/record.json"))]
    assert sorted(r.stage for r in records) == ["eval"] * 3 + ["train"] * 2
    assert all(r.status == "completed" for r in records)
    trainings = {r.run_id: r for r in records if r.stage == "train"}
    for evaluation in (r for r in records if r.stage == "eval"):
        training = trainings[evaluation.parent_run_id]
        assert evaluation.variant.train_sample_ratio == training.variant.train_sample_ratio
        assert evaluation.variant.test_sample_ratio >= training.variant.train_sample_ratio
        finished_training = Path(training.output_dir, "model_final.pth").stat().st_mtime
        assert Path(evaluation.output_dir, "record.json").stat().st_mtime > finished_training


def test_a_second_run_starts_nothing(finished: tuple[Path, Path]) -> None:
    spec, root = finished
    result = sweep("run", str(spec), "--root", str(root))
    assert result.returncode == 0 and "0 to start on local, 5 completed" in result.stdout


def test_status_collect_and_table(finished: tuple[Path, Path], tmp_path: Path) -> None:
    spec, root = finished
    status = sweep("status", str(spec), "--root", str(root))
    assert status.returncode == 0 and "5 completed" in status.stdout
    collect = sweep("collect", str(spec), "--root", str(root), "-o", str(tmp_path / "results.parquet"))
    assert collect.returncode == 0, collect.stderr[-2000:]
    frame = pd.read_parquet(tmp_path / "results.parquet")
    assert len(frame) == 5 and set(frame["status"]) == {"completed"}
    table = sweep("table", str(spec), "--root", str(root), "--format", "md", "--with-paper")
    assert table.returncode == 0, table.stderr[-2000:]
    lines = table.stdout.strip().splitlines()
    assert lines[0].startswith("| train ↓ / inference → | 50% | 100% |")
    assert lines[2].startswith("| 50% |") and "(paper 49.5 / 44.3" in lines[2]
    assert lines[3].startswith("| 100% |  |")
    latex = sweep(
        "table", str(spec), "--root", str(root), "--format", "latex", "-o", str(tmp_path / "t2.tex")
    )
    assert latex.returncode == 0 and "\\toprule" in (tmp_path / "t2.tex").read_text()


def test_a_failed_training_keeps_its_log_and_the_others_finish(data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    # ratio 0.25 with no decoder is refused by the model: that training fails, ratio 1.0 runs
    spec.write_text(
        spec_text(data, train_ratios="[0.25, 1.0]", extra="  model.backbone.bottom_up.num_decoders: 0")
    )
    result = sweep("run", str(spec), "--root", str(tmp_path / "results"), "--max-parallel", "2")
    assert result.returncode == 1, result.stdout[-3000:]
    # 2 trainings, 3 evaluations: the failed training's 2 evaluations are skipped
    assert result.stdout.count("skip eval") == 2, result.stdout[-3000:]
    assert "2 of 5 runs completed" in result.stdout
    records = {
        r.variant.train_sample_ratio: r
        for r in map(read_record, (tmp_path / "results").glob("runs/*/record.json"))
        if r.stage == "train"
    }
    assert records[0.25].status == "failed" and "needs num_decoders" in records[0.25].error
    assert (Path(records[0.25].output_dir) / "log.txt").exists()
    assert records[1.0].status == "completed"
    status = sweep("status", str(spec), "--root", str(tmp_path / "results"))
    assert "1 failed" in status.stdout and "2 new" in status.stdout
    assert f"sweep run {spec} --retry-failed starts failed ones again" in status.stdout


def test_killed_sweep_run_is_rerun_without_duplicates(data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(spec_text(data, iterations=12, train_ratios="[1.0]"))
    root = tmp_path / "results"
    first = start_sweep_run(spec, root)
    wait_for_file(root, "runs/*/model_0000001.pth", first)
    first.send_signal(signal.SIGKILL)  # the sweep process dies; its training goes on
    first.wait(timeout=30)
    (handle_path,) = root.glob("runs/*/job.json")
    orphan = json.loads(handle_path.read_text())["pid"]
    os.killpg(orphan, signal.SIGSTOP)  # held still, however loaded the machine: it must be found running
    try:
        second = start_sweep_run(spec, root)
        decision = second.stdout.readline() if second.stdout else ""  # printed before it waits
    finally:
        os.killpg(orphan, signal.SIGCONT)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, (decision + output)[-3000:]
    assert "1 running" in decision, decision  # recognised, not started again
    assert json.loads(handle_path.read_text())["pid"] == orphan
    log = (handle_path.parent / "log.txt").read_text()
    assert log.count("Starting training from iteration") == 1
    assert read_record(handle_path.parent / "record.json").iterations == 12
    assert all(read_record(p).status == "completed" for p in root.glob("runs/*/record.json"))


def test_a_killed_training_is_interrupted_and_a_plain_rerun_resumes_it(data: Path, tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a lost session) leaves no record: the run is *interrupted*, not failed, so
    the next ``sweep run`` starts it again without ``--retry-failed`` and it resumes from its checkpoint."""
    spec = tmp_path / "long.yaml"
    spec.write_text(spec_text(data, iterations=40, train_ratios="[1.0]"))
    root = tmp_path / "results"
    first = start_sweep_run(spec, root)
    wait_for_file(root, "runs/*/last_checkpoint", first)  # written once a checkpoint is complete
    (handle_path,) = root.glob("runs/*/job.json")
    os.killpg(json.loads(handle_path.read_text())["pid"], signal.SIGKILL)  # the training's process group
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 1, output[-3000:]
    assert "interrupted train" in output and "skip eval" in output, output[-3000:]
    assert f"interrupted runs resume with: sweep run {spec}" in output
    status = sweep("status", str(spec), "--root", str(root))
    assert "1 interrupted" in status.stdout and "SIGKILL" in status.stdout, status.stdout
    assert f"sweep run {spec} resumes interrupted runs" in status.stdout

    assert_a_plain_rerun_resumes(spec, root, handle_path.parent, iterations=40)
    assert not list(root.glob("runs/*/record.json.*.prev"))  # the killed run had written none


def test_two_sweep_runs_on_one_store_run_each_training_and_evaluation_once(
    data: Path, tmp_path: Path
) -> None:
    """A team's shared store: two ``sweep run``s of one spec, started together, share the work: each run is
    started once (under its lock, by whichever checks its state first) and the other waits for it."""
    spec = tmp_path / "micro.yaml"
    spec.write_text(spec_text(data))
    root = tmp_path / "results"
    both = [start_sweep_run(spec, root), start_sweep_run(spec, root)]
    outputs = [process.communicate(timeout=600)[0] for process in both]
    assert [process.returncode for process in both] == [0, 0], outputs
    for output in outputs:  # what each waited for (the later one may see a run started already) completed
        assert re.search(r"^(\d) of \1 runs completed$", output, re.MULTILINE), output
    assert sum(output.count("\nstart ") for output in outputs) == 5, outputs
    records = [read_record(path) for path in root.glob("runs/*/record.json")]
    assert sorted(r.stage for r in records) == ["eval"] * 3 + ["train"] * 2
    assert all(r.status == "completed" for r in records)
    for record in records:
        log = (Path(record.output_dir) / "log.txt").read_text()
        started = "Starting training from iteration" if record.stage == "train" else "Start inference on"
        assert log.count(started) == 1, (record.stage, record.run_id)
    assert not list(root.glob("runs/*/*.prev"))


def test_ctrl_c_interrupts_in_one_line_and_a_plain_rerun_resumes(data: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) of ``sweep run`` is the user's interruption: no traceback, one line naming what was
    stopped, the training left *interrupted* (not cancelled), and a plain re-run resumes it."""
    spec = tmp_path / "long.yaml"
    spec.write_text(spec_text(data, iterations=40, train_ratios="[1.0]"))
    root = tmp_path / "results"
    first = start_sweep_run(spec, root)
    wait_for_file(root, "runs/*/last_checkpoint", first)
    first.send_signal(signal.SIGINT)
    output, _ = first.communicate(timeout=120)
    (handle_path,) = root.glob("runs/*/job.json")
    training = handle_path.parent.name
    assert first.returncode == 130, output[-3000:]
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    assert (
        output.splitlines()[-1]
        == f"interrupted: stopped train {training}; they resume with: sweep run {spec}"
    )
    status = sweep("status", str(spec), "--root", str(root))
    assert "1 interrupted" in status.stdout and "SIGTERM" in status.stdout, status.stdout

    assert_a_plain_rerun_resumes(spec, root, handle_path.parent, iterations=40)


def test_bad_spec_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    lines = ["name: bad", "base_config: experiments/tiny_mimdet.py", "train:", "  axes:"]
    spec.write_text("\n".join([*lines, "    model.backbone.bottom_up.train_sample_ratio: [0, 0.5]", ""]))
    result = sweep("run", str(spec), "--root", str(tmp_path / "results"))
    assert result.returncode == 2 and not (tmp_path / "results").exists()
    errors = [line for line in result.stderr.splitlines() if line.startswith("sweep: error:")]
    assert len(errors) == 1 and f"{spec}:5:" in errors[0] and "train_sample_ratio" in errors[0]


def test_table1_trains_the_benchmarking_row_to_a_record_and_tables_it(data: Path, tmp_path: Path) -> None:
    """Table 1's second row is a different backbone class: its training and evaluation end in completed
    records, and ``table`` / ``plot`` read both rows (they once died on that class's config)."""
    settings = {**micro_settings(data), "train.max_iter": 2}
    spec = tmp_path / "table1.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "micro-table1",
                "table": "table1",
                "base_config": "experiments/tiny_mimdet.py",
                "overrides": settings,
                "train": {
                    "grid": "rows",
                    "rows": [
                        {"label": "mimdet"},
                        {"label": "benchmarking", "base_config": "experiments/tiny_benchmarking.py"},
                    ],
                },
                "eval": {},  # each training evaluated once, at its config's own test settings
            }
        )
    )
    root = tmp_path / "results"
    empty = sweep("table", str(spec), "--root", str(root), "--format", "md")
    assert "Traceback" not in empty.stderr, empty.stderr[-3000:]
    result = sweep("run", str(spec), "--root", str(root), "--max-parallel", "2")
    assert result.returncode == 0, result.stdout[-3000:]
    records = [read_record(path) for path in root.glob("runs/*/record.json")]
    assert sorted((r.variant.model, r.stage) for r in records) == [
        ("benchmarking", "eval"),
        ("benchmarking", "train"),
        ("mimdet", "eval"),
        ("mimdet", "train"),
    ]
    assert all(r.status == "completed" for r in records)
    assert all(r.metrics.bbox.AP is not None for r in records if r.stage == "eval")
    table = sweep("table", str(spec), "--root", str(root), "--format", "md", "--with-paper")
    assert table.returncode == 0, table.stderr[-2000:]
    assert "Benchmarking" in table.stdout and "MIMDet" in table.stdout, table.stdout
    plot = sweep("plot", str(spec), "--root", str(root), "-o", str(tmp_path / "plots"))
    assert "Traceback" not in plot.stderr, plot.stderr[-3000:]


def test_a_checkpoint_trained_elsewhere_is_evaluated_and_tabled(data: Path, tmp_path: Path) -> None:
    """``train: {checkpoint: PATH}`` (Table 2's columns from a released model): no training, one evaluation
    per inference ratio of that file, tabled in its training ratio's row; missing, it is one line."""
    trained = tmp_path / "elsewhere"
    command = [sys.executable, "-m", "mimdet.train", "--config-file", "experiments/tiny_mimdet.py"]
    command += ["--output", str(trained), *micro_overrides(data), "train.max_iter=2"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    spec = tmp_path / "released.yaml"
    settings = yaml.safe_dump({"overrides": micro_settings(data)}, default_flow_style=False)
    spec.write_text(
        f"""
name: released
table: table2
base_config: experiments/tiny_mimdet.py
{settings}
train:
  checkpoint: {trained / "model_final.pth"}
eval:
  axes:
    model.backbone.bottom_up.test_sample_ratio: [0.5, 1.0]
"""
    )
    root = tmp_path / "results"
    missing = spec.with_name("missing.yaml")
    missing.write_text(spec.read_text().replace("model_final.pth", "nothing.pth"))
    refused = sweep("run", str(missing), "--root", str(root))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert "train.checkpoint" in refused.stderr and "convert_reference" in refused.stderr
    assert not list(root.glob("runs/*"))

    result = sweep("run", str(spec), "--root", str(root))
    assert result.returncode == 0 and "2 to start" in result.stdout, result.stdout[-3000:]
    records = [read_record(path) for path in root.glob("runs/*/record.json")]
    assert sorted(r.variant.test_sample_ratio for r in records) == [0.5, 1.0]
    assert all(
        r.stage == "eval" and r.status == "completed" and r.parent_run_id == "elsewhere" for r in records
    )
    assert "0 to start" in sweep("run", str(spec), "--root", str(root)).stdout
    table = sweep("table", str(spec), "--root", str(root), "--format", "md", "--with-paper")
    assert table.returncode == 0, table.stderr[-2000:]
    row = next(line for line in table.stdout.splitlines() if line.startswith("| 50% |"))
    assert "(paper 49.5 / 44.3" in row and "(paper 51.5 / 46.0" in row, table.stdout
