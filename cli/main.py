"""sweep: plan, run, watch and collect the paper's ablation sweeps.

    sweep plan sweeps/table2.yaml                      # runs, dependencies, what exists, cost estimate
    sweep run sweeps/table2.yaml --executor slurm      # submit what is new (trainings, then evaluations)
    sweep status sweeps/table2.yaml --watch            # a live table of states
    sweep logs sweeps/table2.yaml RUN_ID               # a run's log
    sweep cancel sweeps/table2.yaml                    # cancel its queued/running jobs
    sweep collect sweeps/table2.yaml -o results.parquet
    sweep table sweeps/table2.yaml --format md --with-paper
    sweep plot sweeps/table2.yaml -o plots/

The results store is ``--root``, else ``$MIMDET_RESULTS``, else the spec's ``root``, else ``./results``.
A wrong spec is one line naming the file, the key and what is allowed (exit code 2); nothing is started.
A write the file system refuses (full, read-only, a file where a folder should be) is one line, exit code 4.
A run `sweep run` meant to submit and did not is one line per cause: exit code 2 when the spec asks SLURM
for what it does not have (a partition, account or qos: not retried), else 1.
"""

from __future__ import annotations

import sys

from mimdet.run.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_STORAGE, interrupted


def _interrupted() -> int:
    """A Ctrl-C outside ``sweep run``'s runs (which says what it stopped itself): one line, exit 130."""
    return interrupted("sweep")


try:  # a Ctrl-C while the modules load is the same line as once main runs (where torch loads)
    import argparse
    import time
    from collections import Counter
    from collections.abc import Callable
    from pathlib import Path
    from typing import TYPE_CHECKING

    from rich.live import Live

    from cli.views import cell_text, console, runs_table, status_view
    from mimdet.record.atomic import (
        not_a_plain_file,
        refuse_file_in_the_way,
        storage_problem,
        write_bytes_atomic,
    )
    from mimdet.run.arg_types import count
    from mimdet.run.environment import quiet_third_party_warnings
    from sweeps.cache_file import save_all
    from sweeps.executor import ExecutorUnavailable
except KeyboardInterrupt:
    sys.exit(_interrupted())

if TYPE_CHECKING:  # the engine pulls in torch and detectron2: imported when a command runs, not for --help
    import pandas as pd

    from sweeps.engine import SweepOutcome
    from sweeps.expand import SweepPlan
    from sweeps.spec import SpecError, SweepSpec
    from sweeps.store import Store


def _load(args: argparse.Namespace) -> tuple[SweepSpec, SweepPlan, Store]:
    from sweeps.expand import expand
    from sweeps.spec import load_spec
    from sweeps.store import Store, resolve_root

    spec = load_spec(args.spec)
    return spec, expand(spec), Store(resolve_root(args.root, spec.root))


def cmd_plan(args: argparse.Namespace) -> int:
    from sweeps.engine import statuses
    from sweeps.estimate import estimate
    from sweeps.runs import RunState

    spec, plan, store = _load(args)
    found = statuses(store, plan.runs)
    cost = estimate(plan, store)
    rows = []
    for run in plan.runs:
        item = cost.runs.get(run.run_id)
        rows.append(
            [
                run.run_id,
                run.stage,
                cell_text(run.cell),
                run.parent or "",
                found[run.run_id].state.value,
                f"{item.gpu_hours:.1f}" if item and item.gpu_hours is not None else "?",
                f"{item.memory_gb:.1f} G" if item and item.memory_gb is not None else "?",
                item.source if item else "",
            ]
        )
    title = f"{args.spec}: {len(plan.trainings)} trainings, {len(plan.evaluations)} evaluations"
    columns = ("run", "stage", "cell", "after", "state", "GPU-h", "mem (bs 1)", "source")
    console.print(runs_table(title, columns, rows, state=4))
    missing = _missing_checkpoint(spec)
    if missing:
        console.print(f"note: {missing}")
    todo = [r for r in plan.runs if found[r.run_id].state == RunState.NEW]
    peak = cost.peak_memory_gb
    console.print(
        f"store {store.root}: {len(plan.runs) - len(todo)} of {len(plan.runs)} runs exist; "
        f"estimated {cost.total_gpu_hours:.1f} GPU-hours for all, "
        + (f"peak memory {peak:.1f} G at batch 1" if peak is not None else "peak memory unknown")
    )
    return 0


def _missing_checkpoint(spec: SweepSpec) -> SpecError | None:
    """What to do first when the spec evaluates a checkpoint that is not there yet, else None."""
    path = spec.train.checkpoint
    if path is None or Path(path).is_file():
        return None
    hint = f"a released model: python -m mimdet.convert_reference RELEASED.pth {path}"
    return spec.error(("train", "checkpoint"), f"{path} does not exist yet ({hint})")


def cmd_run(args: argparse.Namespace) -> int:
    from sweeps.drive import Interrupted
    from sweeps.engine import decide, run_sweep, statuses
    from sweeps.runs import RunState

    spec, plan, store = _load(args)
    executor = args.executor or spec.executor
    found = statuses(store, plan.runs)
    decision = decide(plan.runs, found, args.retry_failed)
    counts = Counter(decision.skipped.values())
    console.print(
        f"{args.spec}: {len(decision.start)} to start on {executor}"
        + "".join(f", {n} {state}" for state, n in sorted(counts.items()))
        + f" (store {store.root})"
    )
    if args.dry_run:
        for run in decision.start:
            parent = store.run_dir(run.parent) if run.parent else None
            console.print(" ".join(run.command(store.run_dir(run.run_id), parent)), soft_wrap=True)
        return 0
    if not decision.start:
        return 0
    missing = _missing_checkpoint(spec)
    if missing:
        raise missing
    try:
        outcome = run_sweep(
            store, plan.runs, decision, executor, max_parallel=args.max_parallel, report=console.print
        )
    except Interrupted as stop:
        what = ", ".join(f"{run.stage} {run.run_id}" for run in stop.stopped)
        stopped = f"stopped {what}; they resume" if what else "none of its runs was running; the rest start"
        console.print(f"interrupted: {stopped} with: sweep run {args.spec}")
        return EXIT_INTERRUPTED
    if outcome.left_alone:
        console.print(f"left alone: {outcome.left_alone} runs another sweep run submitted meanwhile")
    if not outcome.ended:  # all left to the scheduler
        return _report_submission(args.spec, outcome)
    final = outcome.ended
    failed = [run_id for run_id, state in final.items() if state != RunState.COMPLETED]
    console.print(
        f"{len(final) - len(failed)} of {len(final)} runs completed" + (f"; not: {failed}" if failed else "")
    )
    if RunState.INTERRUPTED in final.values():
        console.print(f"interrupted runs resume with: sweep run {args.spec}")
    return 1 if failed else 0


def _report_submission(spec: str, outcome: SweepOutcome) -> int:
    """What a scheduler took, and one line per cause of what it did not: a run ``sweep run`` meant to submit
    and did not is not success. Exit 2 when the spec asks for what the cluster does not have (fix it), else
    1 (sbatch still refused after its retries, a training that failed: as a local run not completed)."""
    causes: dict[str, list[str]] = {}
    for run_id, refused in outcome.not_submitted.items():
        causes.setdefault(refused.why, []).append(run_id)
    for why, run_ids in causes.items():
        console.print(f"not submitted: {', '.join(run_ids)}: {why}")
    if outcome.submitted or not outcome.not_submitted:
        count = len(outcome.submitted)
        console.print(f"submitted {count} runs; follow them with: sweep status {spec} --watch")
    if any(refused.for_good for refused in outcome.not_submitted.values()):
        return EXIT_BAD_INPUT
    return EXIT_FAILED if outcome.not_submitted else 0


def cmd_status(args: argparse.Namespace) -> int:
    _spec, plan, store = _load(args)
    if args.watch is None:
        console.print(status_view(args.spec, plan, store))
        return 0
    with Live(status_view(args.spec, plan, store), console=console, refresh_per_second=1) as live:
        try:
            while True:
                time.sleep(args.watch)
                live.update(status_view(args.spec, plan, store))
        except KeyboardInterrupt:
            pass
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from sweeps.spec import SpecError
    from sweeps.store import tail_lines

    _spec, plan, store = _load(args)
    matches = [run for run in plan.runs if run.run_id.startswith(args.run)]
    if len(matches) != 1:
        known = ", ".join(run.run_id for run in plan.runs)
        raise SpecError(
            f"{args.spec}: run {args.run!r} matches {len(matches)} runs of this sweep (runs: {known})"
        )
    path = store.log_path(matches[0].run_id)
    if not path.exists():  # a run that ended has no log to come: it was removed or never written
        ended = store.record_bytes(matches[0].run_id) != (None, None)
        console.print(f"{matches[0].run_id}: {'no log' if ended else 'no log yet'} ({path})")
        return 0
    try:
        lines = tail_lines(path, args.lines)
    except OSError as error:
        raise ValueError(f"{path}: cannot read: {error.strerror}") from None
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from sweeps.engine import cancel

    _spec, plan, store = _load(args)
    console.print(f"cancelled {cancel(store, plan.runs)} runs")
    return 0


def _results(plan: SweepPlan, store: Store) -> pd.DataFrame:
    """The sweep's results frame, after one warning line on stderr for each run whose record does not match
    it: that row is left out (the run's cell says failed), and would otherwise be lost without a word."""
    from sweeps.collect import results_frame
    from sweeps.engine import statuses

    found = statuses(store, plan.runs)
    for run_id, status in found.items():
        if status.mismatch:
            print(
                f"sweep: warning: run {run_id}: record.json does not match its run, left out as failed: "
                f"{status.mismatch}",
                file=sys.stderr,
            )
    return results_frame(plan, store, found)


def cmd_collect(args: argparse.Namespace) -> int:
    from sweeps.collect import write_results

    _check_output_file(args)
    _spec, plan, store = _load(args)
    frame = _results(plan, store)
    write_results(frame, Path(args.output))
    console.print(f"{len(frame)} rows -> {args.output}")
    return 0


def _check_output_file(args: argparse.Namespace) -> None:
    """``collect -o`` and ``table -o`` write a new file and rename it over the output: a FIFO, a link or a
    device there would be replaced by a plain file (a link's target never written), so it is refused before
    anything is read. A folder there is left to the write, whose one line names it (exit 4)."""
    if args.output is None:
        return
    kind = not_a_plain_file(args.output)
    if kind is not None and kind != "a folder":
        raise ValueError(
            f"{args.output} is {kind}, not a file (sweep {args.command} writes a new file in its place; "
            "remove it)"
        )


def cmd_table(args: argparse.Namespace) -> int:
    from analysis.tables import TABLES, render_table
    from sweeps.collect import table_layout
    from sweeps.spec import SpecError

    _check_output_file(args)
    spec, plan, store = _load(args)
    if spec.table not in TABLES:
        figure = f"names {spec.table}, a figure: sweep plot {args.spec} -o DIR"  # Fig. 2: from checkpoints
        what = figure if spec.table else "names no table"
        raise SpecError(f"{args.spec}: the spec {what} (table: {'|'.join(TABLES)})")
    frame = _results(plan, store)
    text = render_table(
        spec.table, frame, fmt=args.format, with_paper=args.with_paper, **table_layout(spec.table, plan)
    )
    if args.output:
        write_bytes_atomic(args.output, (text + "\n").encode())
        console.print(f"{spec.table} -> {args.output}")
    else:
        sys.stdout.write(text + "\n")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from analysis.plots import write_plots
    from mimdet.paper.tables import PAPER_TABLES
    from sweeps.spec import SpecError

    spec, plan, store = _load(args)
    drawn = [name for name, table in PAPER_TABLES.items() if table.figures]
    if spec.table not in drawn:
        what = f"{spec.table} has no plots" if spec.table else "the spec names no table to plot"
        raise SpecError(f"{args.spec}: {what} (table: {'|'.join(drawn)}; `sweep table` shows the others)")
    refuse_file_in_the_way(args.output)  # said before the results are read and drawn
    if PAPER_TABLES[spec.table].drawn_from == "checkpoints":
        paths = _plot_feature_maps(args, plan, store)
        console.print(f"Fig. 2 of {len(plan.trainings)} trainings: {len(paths)} files -> {args.output}")
        return 0
    paths = write_plots(_results(plan, store), spec.table, Path(args.output))
    console.print(f"{len(paths)} files -> {args.output}")
    return 0


def _plot_feature_maps(args: argparse.Namespace, plan: SweepPlan, store: Store) -> list[Path]:
    """Fig. 2 from the final checkpoints of the spec's trainings; one line naming the missing ones."""
    from analysis.plots import write_feature_maps
    from sweeps.spec import SpecError

    runs = [(str(run.cell.get("row", run.run_id)), run) for run in plan.trainings]
    checkpoints = {run.run_id: store.run_dir(run.run_id) / "model_final.pth" for _, run in runs}
    missing = [f"{name} ({run.run_id})" for name, run in runs if not checkpoints[run.run_id].is_file()]
    if missing:
        raise SpecError(
            f"{args.spec}: Fig. 2 shows trained models, and {', '.join(missing)} "
            f"{'has' if len(missing) == 1 else 'have'} no final checkpoint "
            f"in {store.root}: run `sweep run {args.spec}` first"
        )
    return write_feature_maps(
        [(name, run.config_file, checkpoints[run.run_id], run.overrides) for name, run in runs],
        Path(args.output),
    )


MAX_WATCH_S = 86_400.0


def _seconds(text: str) -> float:
    """``--watch``'s period: a number of seconds above 0, at most a day (``time.sleep`` takes no more)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_WATCH_S:  # nan fails both
        raise argparse.ArgumentTypeError(f"{text} seconds (allowed: more than 0, at most {MAX_WATCH_S:.0f})")
    return value


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("spec", metavar="SPEC", help="a sweep spec (YAML), e.g. sweeps/tiny/table2.yaml")
        sub.add_argument(
            "--root", help="results store (default: $MIMDET_RESULTS, the spec's root, ./results)"
        )
        sub.set_defaults(handler=handler)
        return sub

    command("plan", cmd_plan, "list the runs, their dependencies, what exists and the estimated cost")
    run = command(
        "run", cmd_run, "start or submit what is new or was interrupted (and failed, with --retry-failed)"
    )
    run.add_argument("--executor", choices=("local", "slurm"), help="default: the spec's executor")
    run.add_argument("--dry-run", action="store_true", help="print what would start, start nothing")
    run.add_argument("--retry-failed", action="store_true", help="start failed and cancelled runs again")
    run.add_argument(
        "--max-parallel", type=count, default=1, help="local executor: processes at once (default 1)"
    )
    status = command("status", cmd_status, "a table of every run's state")
    status.add_argument(
        "--watch", type=_seconds, nargs="?", const=5.0, help="refresh every N seconds (default 5)"
    )
    logs = command("logs", cmd_logs, "print the end of a run's log")
    logs.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    logs.add_argument("-n", "--lines", type=count, default=50, help="how many lines (default 50)")
    command("cancel", cmd_cancel, "cancel the sweep's queued and running jobs")
    collect = command("collect", cmd_collect, "one row per run (records and states) into a Parquet/CSV file")
    collect.add_argument("-o", "--output", required=True, help="results.parquet or results.csv")
    table = command(
        "table", cmd_table, "the paper's table from this sweep's results, beside the paper's numbers"
    )
    table.add_argument("--format", choices=("md", "latex"), default="md")
    table.add_argument("--with-paper", action="store_true", help="the paper's figure and the difference")
    table.add_argument("-o", "--output", help="write to a file instead of stdout")
    plot = command(
        "plot",
        cmd_plot,
        "the table's figures (PNG and PDF): heatmaps, accuracy vs cost, decoders; Fig. 2's feature maps",
    )
    plot.add_argument("-o", "--output", required=True, help="folder for the figures")
    return main_parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        quiet_third_party_warnings()
        code: int = args.handler(args)
        save_all()  # the caches' new answers before the end, where a Ctrl-C is this command's line
        return code
    except (ValueError, FileNotFoundError) as error:  # SpecError, TableError, OverrideError among them
        print(f"sweep: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExecutorUnavailable as error:
        print(f"sweep: error: {error}; nothing was changed, try again later", file=sys.stderr)
        return 3
    except OSError as error:  # a write the file system refused: full, read-only, a file in the way
        problem = storage_problem(error)
        if problem is None:
            raise
        print(f"sweep: error: {problem}", file=sys.stderr)
        return EXIT_STORAGE
    except KeyboardInterrupt:
        return _interrupted()


if __name__ == "__main__":
    sys.exit(main())
