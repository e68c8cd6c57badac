"""The ``sweep`` commands that read a spec and a store without running anything: what they print and when
they refuse, called in-process as ``cli.main.main`` (the engine's own tests run real sweeps)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cli.main import main
from cli.views import RICH_ROWS
from mimdet.run.exit_codes import EXIT_BAD_INPUT
from tests import REPO
from tests.stalling import interrupted_at_its_stall

if TYPE_CHECKING:
    from sweeps.runs import RunSpec
    from sweeps.store import Store


def test_plan_prints_its_summary_on_a_fresh_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No record and no paper cost for the tiny model: the summary still says what exists and the
    estimate, and that the peak memory is unknown (it once printed only the last clause)."""
    code = main(["plan", str(REPO / "sweeps" / "tiny" / "table2.yaml"), "--root", str(tmp_path / "store")])
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    assert code == 0
    assert summary.startswith(f"store {tmp_path / 'store'}: 0 of 9 runs exist; estimated "), summary
    assert summary.endswith("peak memory unknown"), summary


@pytest.mark.parametrize(
    ("argv", "env", "problem"),
    [
        (["--root", "/tmp/store\n#SBATCH --wrap=x"], {}, "store root from --root: '/tmp/store\\n#SBATCH"),
        (["--root", ""], {}, "store root from --root: empty (allowed: a folder's path; leave --root out"),
        (["--root", " "], {}, "store root from --root: ' ' is only white space (allowed: a folder's path)"),
        ([], {"MIMDET_RESULTS": "\t "}, "store root from $MIMDET_RESULTS: '\\t ' is only white space"),
        (
            [],
            {"MIMDET_RESULTS": "/tmp/100%store"},
            "store root from $MIMDET_RESULTS: '/tmp/100%store' holds '%'",
        ),
        (  # before: a RuntimeError traceback from pathlib, "Could not determine home directory."
            [],
            {"MIMDET_RESULTS": "~no-such-user/store"},
            "store root from $MIMDET_RESULTS: '~no-such-user/store': ~no-such-user is no user here",
        ),
    ],
)
def test_a_store_root_that_would_break_the_job_script_is_one_line(
    argv: list[str],
    env: dict[str, str],
    problem: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["plan", str(REPO / "sweeps" / "tiny" / "table2.yaml"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"sweep: error: {problem}"), err


@pytest.mark.parametrize("command", [["plan"], ["status"], ["run", "--dry-run"]])
def test_user_text_that_looks_like_rich_markup_is_printed_as_it_is(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row label, the spec's folder and the store root are the user's text, not rich markup: before, a
    label "[/bold]" (or a folder named "sp[/x]") was a MarkupError traceback, after ``sweep run`` had
    started its training, and "[bold red]x" lost its brackets."""
    folder = tmp_path / "sp[/x]"  # a folder "x]" in a folder "sp["
    folder.mkdir(parents=True)
    spec = folder / "markup.yaml"
    spec.write_text(
        "name: markup\nbase_config: experiments/tiny_mimdet.py\ntrain:\n  grid: rows\n  rows:\n"
        '    - {label: "[/bold]"}\n    - {label: "[bold red]x:smile:", overrides: {train.seed: 3}}\n'
    )
    root = tmp_path / "r[/x]"
    code = main([command[0], str(spec), "--root", str(root), *command[1:]])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert str(spec) in out and (command[0] == "status" or str(root) in out), out
    if command[0] != "run":
        assert "row=[/bold]" in out and "row=[bold red]x:smile:" in out, out


@pytest.mark.parametrize("spec", ["fig2.yaml", "tiny/fig2.yaml"])
def test_plot_of_fig2_without_trained_runs_says_what_to_run(
    spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = REPO / "sweeps" / spec
    code = main(["plot", str(path), "--root", str(tmp_path / "store"), "-o", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert (
        "mimdet (" in err
        and "benchmarking (" in err
        and "have no final checkpoint" in err
        and f"run `sweep run {path}` first" in err
    )
    assert not (tmp_path / "plots").exists()


def test_plot_of_fig2_draws_the_feature_maps_of_its_trainings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny Fig. 2 spec's two trainings, given final checkpoints (their initial weights)."""
    from detectron2.checkpoint import DetectionCheckpointer

    from mimdet.run.features import load_run_model
    from sweeps.expand import expand
    from sweeps.spec import load_spec

    path = REPO / "sweeps" / "tiny" / "fig2.yaml"
    store = tmp_path / "store"
    for run in expand(load_spec(path)).trainings:
        model, _ = load_run_model(run.config_file, None, run.overrides)
        (store / "runs" / run.run_id).mkdir(parents=True)
        DetectionCheckpointer(model, str(store / "runs" / run.run_id)).save("model_final")
    code = main(["plot", str(path), "--root", str(store), "-o", str(tmp_path / "plots")])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "fig2_feature_maps.pdf",
        "fig2_feature_maps.png",
    ]
    assert "Fig. 2 of 2 trainings: 2 files" in capsys.readouterr().out


def test_plan_and_status_of_a_large_sweep_print_plain_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Above ``RICH_ROWS`` runs the table is aligned text (rich would take ~1 ms a row): a title, the
    header, a rule and one line per run with its state."""
    spec = tmp_path / "large.yaml"
    seeds = list(range(RICH_ROWS + 10))
    spec.write_text(
        f"name: large\nbase_config: experiments/tiny_mimdet.py\ntrain:\n  axes:\n    train.seed: {seeds}\n"
    )
    for command in ("plan", "status"):
        assert main([command, str(spec), "--root", str(tmp_path / "store")]) == 0
        lines = capsys.readouterr().out.splitlines()
        header = ["run", "stage", "cell", "after" if command == "plan" else "state"]
        assert lines[0].startswith(f"{spec}: ") and lines[1].split()[:4] == header
        assert set(lines[2]) == {"-", " "}
        rows = [line.split() for line in lines[3 : 3 + len(seeds)]]
        assert [row[1:3] for row in rows] == [["train", f"seed={seed}"] for seed in seeds]
        assert all("new" in row for row in rows)


@pytest.mark.parametrize("command", ["plan", "status", "run"])
@pytest.mark.parametrize("root", ["file", "file/store"])
def test_a_store_root_that_is_a_file_or_under_one_is_one_line(
    command: str, root: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a store of new runs (``status``), nor a traceback once ``run`` makes the runs' folders."""
    (tmp_path / "file").write_text("not a folder")
    code = main([command, str(REPO / "sweeps" / "tiny" / "table2.yaml"), "--root", str(tmp_path / root)])
    err = capsys.readouterr().err
    expected = f"sweep: error: store root from --root: {tmp_path / 'file'} is a file, not a folder\n"
    assert code == 2 and err == expected
    assert (tmp_path / "file").read_text() == "not a folder"


EXIT_STORAGE = 4  # sweep's exit code when the file system refuses a write


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["collect", "-o", "{tmp}/file/results.csv"], "{tmp}/file is a file, not a folder"),
        (["collect", "-o", "{tmp}/file/more/results.parquet"], "not a directory (writing {tmp}/file/more)"),
        (["table", "-o", "{tmp}"], "is a directory (writing {tmp})"),
        (["run", "--root", "{tmp}/store"], "not a directory (writing {tmp}/store/runs/"),
        (["run", "--root", "{tmp}/store2"], "{tmp}/store2/runs/{run} is a file, not a folder"),
        (["plot", "-o", "{tmp}/file"], "{tmp}/file is a file, not a folder"),
        (
            ["run", "--root", "{tmp}/store3"],
            "{tmp}/store3/runs/{run} is a link to {tmp}/gone, which is not there",
        ),
    ],
    ids=[
        "collect-under-a-file",
        "collect-deeper",
        "table-into-a-folder",
        "run-with-runs-a-file",
        "run-with-a-run-folder-a-file",
        "plot-into-a-file",
        "run-with-a-run-folder-a-link-to-nothing",
    ],
)
def test_a_write_in_the_way_of_a_file_or_folder_is_one_line(
    argv: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, a file where a folder should be was ``file exists (writing PATH)``, which said neither; a
    link to nothing was called a file."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec

    spec = REPO / "sweeps" / ("tiny/table3.yaml" if argv[0] == "plot" else "tiny/table2.yaml")
    trainings = [run.run_id for run in expand(load_spec(spec)).trainings]
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "runs").write_text("not a folder")  # runs/ of a store, a file
    (tmp_path / "store2" / "runs").mkdir(parents=True)
    for run in trainings:  # each training's folder a file: none can start
        (tmp_path / "store2" / "runs" / run).write_text("not a folder")
    (tmp_path / "store3" / "runs").mkdir(parents=True)
    for run in trainings:  # each a link to a folder moved away
        (tmp_path / "store3" / "runs" / run).symlink_to(tmp_path / "gone")
    args = [arg.format(tmp=tmp_path) for arg in argv]
    code = main([args[0], str(spec), *args[1:]])
    err = capsys.readouterr().err
    assert code == EXIT_STORAGE and err.count("\n") == 1, err
    assert err.startswith(f"sweep: error: {problem.format(tmp=tmp_path, run=trainings[0])}"), err


@pytest.mark.parametrize("command", ["collect", "table"])
@pytest.mark.parametrize(
    "target", [None, "kept.csv", "folder"], ids=["fifo", "link-to-a-file", "link-to-a-folder"]
)
def test_an_output_that_is_not_a_plain_file_is_one_line_and_left_as_it_was(
    command: str, target: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``collect -o`` / ``table -o`` of a FIFO or a link (to a file elsewhere, to a folder): one line, exit 2,
    nothing read or written. Before: the rename of the new file replaced the FIFO, or the link itself (its
    target never written), with a plain file."""
    spec, output = REPO / "sweeps" / "tiny" / "table2.yaml", tmp_path / "out.csv"
    (tmp_path / "kept.csv").write_text("kept\n")
    (tmp_path / "folder").mkdir()
    if target is None:
        os.mkfifo(output)
    else:
        output.symlink_to(tmp_path / target)
    code = main([command, str(spec), "--root", str(tmp_path / "store"), "-o", str(output)])
    err = capsys.readouterr().err
    kind = "a FIFO" if target is None else "a link"
    problem = f"{output} is {kind}, not a file (sweep {command} writes a new file in its place; remove it)"
    assert (code, err) == (EXIT_BAD_INPUT, f"sweep: error: {problem}\n")
    assert output.is_fifo() if target is None else output.readlink() == tmp_path / target
    assert (tmp_path / "kept.csv").read_text() == "kept\n" and not any((tmp_path / "folder").iterdir())


@pytest.mark.parametrize("kind", ["a FIFO", "a link"])
def test_a_run_log_that_is_not_a_plain_file_stops_sweep_run_in_one_line(kind: str, tmp_path: Path) -> None:
    """Each training's ``stdout.log`` a FIFO (or a link to a file elsewhere) in the store: one line, exit 2,
    nothing started. Before: ``sweep run`` waited forever in its open for writing (a link: the run's
    output appended to the file linked to)."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec

    spec, store, elsewhere = REPO / "sweeps" / "tiny" / "table2.yaml", tmp_path / "store", tmp_path / "kept"
    elsewhere.write_text("kept\n")
    trainings = [run.run_id for run in expand(load_spec(spec)).trainings]
    for run in trainings:
        (store / "runs" / run).mkdir(parents=True)
        log = store / "runs" / run / "stdout.log"
        if kind == "a FIFO":
            os.mkfifo(log)
        else:
            log.symlink_to(elsewhere)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "run", str(spec), "--root", str(store)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = store / "runs" / trainings[0] / "stdout.log"
    problem = f"{log} is {kind}, not a file (the run's output goes there; remove it)"
    assert (result.returncode, result.stderr) == (2, f"sweep: error: {problem}\n")
    assert elsewhere.read_text() == "kept\n"
    assert not any((store / "runs" / run / "job.json").exists() for run in trainings)


@pytest.mark.parametrize("command", ["collect", "table", "run"])
def test_a_read_only_file_system_is_one_line_and_no_half_written_result(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_train import tmpfs

    spec = str(REPO / "sweeps" / "tiny" / "table2.yaml")
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        output = ["--root", str(mount)] if command == "run" else ["-o", str(mount / f"out.{command}.csv")]
        code = main(
            [command, spec, *(["--root", str(tmp_path / "store")] if command != "run" else []), *output]
        )
        left = list(mount.iterdir())
    err = capsys.readouterr().err
    assert code == EXIT_STORAGE and err.count("\n") == 1, err
    assert err.startswith(f"sweep: error: read-only file system (writing {mount}/"), err
    assert left == []


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["logs", "{spec}", "f2b", "-n", "0"], "argument -n/--lines: 0 is not a count (allowed: 1 or more)"),
        (["logs", "{spec}", "f2b", "-n", "-3"], "argument -n/--lines: -3 is not a count"),
        (["run", "{spec}", "--dry-run", "--max-parallel", "0"], "argument --max-parallel: 0 is not a count"),
        (
            ["status", "{spec}", "--watch", "-1"],
            "argument --watch: -1 seconds (allowed: more than 0, at most",
        ),
        (["status", "{spec}", "--watch", "nan"], "argument --watch: nan seconds"),
        (["status", "{spec}", "--watch", "inf"], "argument --watch: inf seconds"),
    ],
)
def test_a_count_or_period_that_is_not_one_is_refused_before_anything_runs(
    argv: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``-n 0`` printed the whole log and ``-n -3`` all but 3 lines, ``--max-parallel 0`` ran one,
    ``--watch -1`` printed the table and then failed, ``--watch inf`` was a traceback."""
    spec = str(REPO / "sweeps" / "tiny" / "table2.yaml")
    with pytest.raises(SystemExit) as exit_:
        main([*(arg.format(spec=spec) for arg in argv), "--root", str(tmp_path / "store")])
    captured = capsys.readouterr()
    assert exit_.value.code == 2 and captured.out == ""
    assert captured.err.splitlines()[-1].startswith(f"sweep {argv[0]}: error: {problem}")


@pytest.mark.parametrize("table", ["table1", "table4"])
def test_plot_of_a_table_without_plots_is_one_line_and_creates_nothing(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: exit 0, ``table1 has no plots``, and an empty output folder."""
    spec = REPO / "sweeps" / "tiny" / f"{table}.yaml"
    code = main(["plot", str(spec), "--root", str(tmp_path / "store"), "-o", str(tmp_path / "plots")])
    err = capsys.readouterr().err
    problem = f"{table} has no plots (table: table2|table3|fig2; `sweep table` shows the others)"
    assert code == 2 and err == f"sweep: error: {spec}: {problem}\n"
    assert not (tmp_path / "plots").exists()


def test_table_of_a_figure_says_how_to_draw_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: ``the spec names no table`` of a spec that names fig2."""
    spec = REPO / "sweeps" / "tiny" / "fig2.yaml"
    code = main(["table", str(spec), "--root", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(
        f"sweep: error: {spec}: the spec names fig2, a figure: sweep plot {spec} -o DIR"
    )


def write_made_up_records(store: Store, runs: list[RunSpec], box_ap: Callable[[RunSpec], float]) -> None:
    """A completed record of each of ``runs`` as the run would write it (its variant and data from its config
    and overrides; no training), box and mask AP ``box_ap(run)`` for an evaluation."""
    from mimdet.record.examples import example_record
    from mimdet.record.schema import DatasetInfo, write_record
    from sweeps.config_cache import run_facts

    for run in runs:
        facts = run_facts(run.config_file, run.overrides)
        ap = None if run.stage == "train" else box_ap(run)
        record = example_record(
            run.run_id,
            stage=run.stage,
            parent_run_id=run.parent,
            config_file=run.config_file,
            overrides=list(run.overrides),
            variant=facts.variant,
            dataset=DatasetInfo(facts.dataset_train, facts.dataset_test),
            iterations=facts.iterations,
            box=ap,
            mask=ap,
        )
        write_record(record, store.run_dir(run.run_id) / "record.json")


@pytest.mark.parametrize("command", ["table", "collect"])
def test_a_record_that_does_not_match_its_run_is_a_warning_and_a_failed_cell(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An evaluation's record edited by hand to another inference ratio: one warning line naming the run, the
    field, expected and found; its cell says failed. Before: the row went to the (0.5, 0.25) cell, no
    evaluation of the spec's, and the (0.5, 1.0) cell said missing, without a word."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store

    spec, store = REPO / "sweeps" / "tiny" / "table2.yaml", Store(tmp_path / "store")
    runs = expand(load_spec(spec)).runs
    write_made_up_records(store, runs, lambda run: 40.0)
    edited = next(run for run in runs if run.cell == {"train_sample_ratio": 0.5, "test_sample_ratio": 1.0})
    path = store.run_dir(edited.run_id) / "record.json"
    data = json.loads(path.read_text())
    data["variant"]["test_sample_ratio"] = 0.25
    path.write_text(json.dumps(data))
    output = tmp_path / "table.md" if command == "table" else tmp_path / "results.csv"
    code = main([command, str(spec), "--root", str(store.root), "-o", str(output)])
    err = capsys.readouterr().err
    mismatch = "variant.test_sample_ratio: expected 1.0, found 0.25"
    assert (code, err) == (
        0,
        f"sweep: warning: run {edited.run_id}: record.json does not match its run, left out as failed: "
        f"{mismatch}\n",
    )
    if command == "table":
        assert "| 50% |  | 40.0 / 40.0 | failed | 1.0 h | 1.9 G |" in output.read_text()
    else:
        (row,) = [row for row in csv.DictReader(output.open()) if row["run_id"] == edited.run_id]
        assert (row["status"], row["error"]) == ("failed", f"record.json does not match its run: {mismatch}")


def test_table_of_a_spec_over_seeds_shows_their_mean_and_what_is_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``train.seed: [0, 1, 2]``, seeds 0 and 1 recorded (made-up records, no training), seed 2 not run:
    before, each cell showed one seed's numbers and dropped the other without a word."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store

    spec = tmp_path / "seeds.yaml"
    spec.write_text(
        (REPO / "sweeps" / "tiny" / "table2.yaml")
        .read_text()
        .replace(
            "train_sample_ratio: [0.25, 0.5, 1.0]", "train_sample_ratio: [0.5]\n    train.seed: [0, 1, 2]"
        )
    )
    store = Store(tmp_path / "store")
    runs = [run for run in expand(load_spec(spec)).runs if run.cell["seed"] != 2]
    write_made_up_records(
        store, runs, lambda run: 40.0 + 2 * run.cell["seed"] + 10 * run.cell["test_sample_ratio"]
    )
    code = main(["table", str(spec), "--root", str(store.root), "--format", "md"])
    out = capsys.readouterr().out
    assert code == 0
    assert (
        "| 50% | 46.0 / 46.0 (2 of 3 done, sd 1.4 / 1.4) | 51.0 / 51.0 (2 of 3 done, sd 1.4 / 1.4) |" in out
    )
    assert "| 1.0 h (2 of 3 done, sd 0.0) | 1.9 G (2 of 3 done, sd 0.0) |" in out


def test_a_full_disk_leaves_no_half_written_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Table 3's figure (a PNG of ~180 KB) on a 100 KB tmpfs: one line, and no file cut short."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store
    from tests.test_train import tmpfs

    spec = REPO / "sweeps" / "tiny" / "table3.yaml"
    write_made_up_records(Store(tmp_path / "store"), expand(load_spec(spec)).runs, lambda run: 40.0)
    with tmpfs(tmp_path / "small", "size=100k") as mount:
        code = main(["plot", str(spec), "--root", str(tmp_path / "store"), "-o", str(mount / "plots")])
        left = sorted(path.name for path in (mount / "plots").iterdir())
    err = capsys.readouterr().err
    assert code == EXIT_STORAGE and err.startswith("sweep: error: no space left on device (writing "), err
    assert left == []  # the PNG first: not there at all, and nothing after it written


def test_plot_of_table3_with_one_decoder_count_is_the_tables_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Table 3 spec of one training, completed: ``sweep plot`` refuses as ``sweep table`` does, in the same
    line, and writes nothing (before: two figures of one point, exit 0)."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store

    spec = tmp_path / "one.yaml"
    text = (REPO / "sweeps" / "tiny" / "table3.yaml").read_text()
    spec.write_text(text.replace("num_decoders: [1, 2, 4, 8]", "num_decoders: [4]"))
    store = tmp_path / "store"
    write_made_up_records(Store(store), expand(load_spec(spec)).runs, lambda run: 40.0)
    lines = []
    for command in (["table"], ["plot", "-o", str(tmp_path / "plots")]):
        code = main([command[0], str(spec), "--root", str(store), *command[1:]])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
        lines.append(err)
    assert lines[0] == lines[1] and lines[0].endswith(" (wanted two or more of 4)\n"), lines
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize("log", ["dev-zero", "folder"])
def test_logs_of_a_log_that_is_endless_or_a_folder_is_bounded_or_one_line(
    log: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sweep logs`` reads at most the log's last 4 MiB: a link to ``/dev/zero`` is not read into memory."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec

    spec = REPO / "sweeps" / "tiny" / "table2.yaml"
    run = expand(load_spec(spec)).trainings[0].run_id
    folder = tmp_path / "store" / "runs" / run
    folder.mkdir(parents=True)
    if log == "folder":
        (folder / "log.txt").mkdir()
    else:
        (folder / "log.txt").symlink_to("/dev/zero")
    code = main(["logs", str(spec), run, "--root", str(tmp_path / "store")])
    out, err = capsys.readouterr()
    if log == "folder":
        assert code == 2 and err == f"sweep: error: {folder / 'log.txt'}: cannot read: Is a directory\n"
    else:
        assert code == 0 and len(out) <= 4 * 2**20 + 1 and set(out) == {"\0", "\n"}


def test_logs_of_a_run_without_a_log_say_whether_one_may_still_come(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "no log yet" for a run that had ended (its record written) and whose log was removed."""
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store

    spec, store = REPO / "sweeps" / "tiny" / "table2.yaml", Store(tmp_path / "store")
    new, ended = expand(load_spec(spec)).trainings[:2]
    write_made_up_records(store, [ended], lambda run: 40.0)
    said = []
    for run in (new, ended):
        assert main(["logs", str(spec), run.run_id, "--root", str(store.root)]) == 0
        said.append(capsys.readouterr().out.split(" (")[0])
    assert said == [f"{new.run_id}: no log yet", f"{ended.run_id}: no log"]


def test_collect_takes_the_suffix_in_any_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, output = REPO / "sweeps" / "tiny" / "table2.yaml", tmp_path / "results.CSV"
    assert main(["collect", str(spec), "--root", str(tmp_path / "store"), "-o", str(output)]) == 0
    assert output.read_text().startswith("run_id,")


STALLED_SWEEP = """
import os, runpy, sys
from tests.stalling import stall, stall_first_import

point = sys.argv.pop(1)
if point == "cache save":  # the first file written (a cache: plan writes no other) waits before its rename
    fsync = os.fsync
    def stall_once(fd):
        os.fsync = fsync
        stall()
    os.fsync = stall_once
else:
    stall_first_import(point)
runpy.run_module("cli.main", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("point", ["rich.console", "torch", "cache save"])
def test_ctrl_c_while_modules_load_or_caches_are_saved_is_one_line(point: str, tmp_path: Path) -> None:
    """``python -m cli.main plan``, stopped where it waits (a module of cli.main's own imports, torch as a
    command loads it, the cache file written but not yet renamed) and sent SIGINT. Before: a
    KeyboardInterrupt traceback from inside rich, or ``Exception ignored in atexit callback`` with its
    traceback and exit 0."""
    cache = tmp_path / "cache"
    spec, store = REPO / "sweeps" / "tiny" / "table2.yaml", tmp_path / "store"
    command = [sys.executable, "-c", STALLED_SWEEP, point, "plan", str(spec), "--root", str(store)]
    # a fresh cache: plan loads torch and saves answers
    assert interrupted_at_its_stall(command, REPO, MIMDET_CACHE=str(cache)) == (130, "sweep: interrupted\n")
    if point == "cache save":  # the save cut short left nothing; the one at exit wrote the whole file
        saved = list((cache / "sweeps").iterdir())
        assert [path.suffix for path in saved] == [".json"]
        assert json.loads(saved[0].read_bytes().partition(b"\n")[2])
