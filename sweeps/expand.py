"""Spec -> runs: every training of the grid, then every kept evaluation of every training.

A training's overrides are the spec's fixed ones and its cell's; an evaluation's add its own eval cell
(later ones win on a shared key), all as ``key=value`` text sorted by key, so the same cell gives the same
``RunSpec`` whichever table asked for it. Run ids come from ``sweeps.identity.run_id``: a cell whose
overrides restate the base config is the base config's run, which is how Table 2's (0.5, 1.0) cell,
Table 3's 4-decoder cell and Table 4's row 1 are one training and one evaluation.

A spec whose ``train`` names a checkpoint has no trainings: its evaluations have no parent and load
that file (``train.init_checkpoint``), so its path is part of their identity.

Two cells of a stage that are the same run (their overrides change the same things) make the spec
ambiguous and raise a ``SpecError`` at the grid that produced them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mimdet.run.overrides import override_string

from .config_cache import parsed_override
from .filters import Cell, compile_filter
from .identity import run_id
from .runs import INIT_CHECKPOINT, Resources, RunSpec, Stage
from .spec import KeyPath, SweepSpec, axis_name


@dataclass(frozen=True)
class SweepPlan:
    """The runs of a spec, trainings first; each evaluation's ``parent`` is its training's run id."""

    trainings: list[RunSpec]
    evaluations: list[RunSpec]

    @property
    def runs(self) -> list[RunSpec]:
        return [*self.trainings, *self.evaluations]


@dataclass(frozen=True)
class _Cell:
    """One grid point: its overrides by key (as text), its axis values by name, where it was written."""

    config_file: str
    overrides: dict[str, str]
    values: dict[str, Any]
    path: KeyPath


def expand(spec: SweepSpec) -> SweepPlan:
    """All runs of ``spec``; a ``SpecError`` where two cells are one run or the filter cannot compare."""
    fixed = {key: override_string(key, value, parsed_override) for key, value in spec.overrides.items()}
    resources = spec.train.resources.to_resources()
    trainings: list[tuple[RunSpec, dict[str, str], KeyPath]] = []
    if spec.train.checkpoint is not None:
        fixed[INIT_CHECKPOINT] = f"{INIT_CHECKPOINT}={spec.train.checkpoint}"
        return SweepPlan(trainings=[], evaluations=_evaluations(spec, [(None, {}, fixed)]))
    for cell in _train_cells(spec):
        overrides = {**fixed, **cell.overrides}
        run = _run_spec(cell.config_file, overrides, "train", None, cell.values, resources)
        trainings.append((run, overrides, cell.path))
    _check_unique(spec, "train", [(run, path) for run, _, path in trainings])
    evaluated = [(run, run.cell, overrides) for run, overrides, _ in trainings]
    return SweepPlan(trainings=[run for run, _, _ in trainings], evaluations=_evaluations(spec, evaluated))


def _evaluations(
    spec: SweepSpec, trained: Sequence[tuple[RunSpec | None, dict[str, Any], dict[str, str]]]
) -> list[RunSpec]:
    """The kept evaluations of each (training or None for the spec's checkpoint, its cell, its overrides)."""
    if spec.eval is None:
        return []
    keep = compile_filter(spec.eval.filter, spec.axis_names()) if spec.eval.filter else None
    resources = spec.eval.resources.to_resources()
    eval_cells = list(_product(spec.eval.axes, "", ("eval", "axes")))
    evaluations: list[RunSpec] = []
    for training, train_cell, train_overrides in trained:
        config_file = training.config_file if training else spec.base_config
        runs = []
        for cell in eval_cells:
            values = {**train_cell, **cell.values}
            if keep is None or _kept(spec, keep, values):
                overrides = {**train_overrides, **cell.overrides}
                parent = training.run_id if training else None
                runs.append((_run_spec(config_file, overrides, "eval", parent, values, resources), cell.path))
        _check_unique(spec, "eval", runs)
        evaluations += [run for run, _ in runs]
    if keep is not None and trained and not evaluations:
        problem = (
            f"keeps no evaluation of the {len(trained) * len(eval_cells)} it filters (allowed: a filter that "
            "keeps one or more; a spec without eval evaluates nothing)"
        )
        raise spec.error(("eval", "filter"), problem)
    return evaluations


def _train_cells(spec: SweepSpec) -> Iterator[_Cell]:
    train = spec.train
    if train.grid == "rows":
        for index, row in enumerate(train.rows):
            overrides = {
                key: override_string(key, value, parsed_override) for key, value in row.overrides.items()
            }
            config = row.base_config or spec.base_config
            yield _Cell(config, overrides, {"row": row.label}, ("train", "rows", index))
    elif train.grid == "zip":
        texts = _axis_texts(train.axes)
        for index in range(len(next(iter(train.axes.values()), [None]))):
            yield _Cell(
                spec.base_config,
                {key: texts[key][index] for key in train.axes},
                {axis_name(key): values[index] for key, values in train.axes.items()},
                ("train", "axes"),
            )
    else:
        yield from _product(train.axes, spec.base_config, ("train", "axes"))


def _product(axes: dict[str, list[Any]], config_file: str, path: KeyPath) -> Iterator[_Cell]:
    """Every combination of the axes' values, the first axis varying slowest (one cell without axes)."""
    texts = _axis_texts(axes)
    keys = list(axes)
    for indexes in itertools.product(*(range(len(axes[key])) for key in keys)):
        yield _Cell(
            config_file,
            {key: texts[key][i] for key, i in zip(keys, indexes, strict=True)},
            {axis_name(key): axes[key][i] for key, i in zip(keys, indexes, strict=True)},
            path,
        )


def _axis_texts(axes: dict[str, list[Any]]) -> dict[str, list[str]]:
    return {
        key: [override_string(key, value, parsed_override) for value in values]
        for key, values in axes.items()
    }


def _run_spec(
    config_file: str,
    overrides: dict[str, str],
    stage: Stage,
    parent: str | None,
    cell: dict[str, Any],
    resources: Resources,
) -> RunSpec:
    texts = tuple(overrides[key] for key in sorted(overrides))
    return RunSpec(
        run_id=run_id(config_file, texts, stage, parent),
        stage=stage,
        config_file=config_file,
        overrides=texts,
        parent=parent,
        cell=cell,
        resources=resources,
    )


def _check_unique(spec: SweepSpec, stage: Stage, runs: list[tuple[RunSpec, KeyPath]]) -> None:
    seen: dict[str, RunSpec] = {}
    for run, path in runs:
        other = seen.setdefault(run.run_id, run)
        if other is not run:
            problem = (
                f"cells {_show(other.cell)} and {_show(run.cell)} are the same {stage} run ({run.run_id}): "
                "their overrides change the same settings"
            )
            raise spec.error(path, problem)


def _kept(spec: SweepSpec, keep: Callable[[Cell], bool], values: dict[str, Any]) -> bool:
    try:
        return bool(keep(values))
    except TypeError as error:
        raise spec.error(("eval", "filter"), f"cannot evaluate at {_show(values)}: {error}") from None


def _show(cell: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{name}={value!r}" for name, value in cell.items()) + "}"
