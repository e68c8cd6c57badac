"""Sweep specs -> runs: the shipped specs, shared cells, grid forms, filters, every validation error as
one ``FILE:LINE: key.path: problem`` line (hand-picked and 100 generated malformed specs), override
text, and the cost estimate from the paper and from a store's records."""

from __future__ import annotations

import copy
import io
import json
import os
import re
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from ruamel.yaml import YAML

from mimdet.modeling.mimdet_backbone import check_num_decoders
from mimdet.modeling.token_sampler import check_sample_ratio
from mimdet.record.examples import example_record, example_variant
from mimdet.record.schema import (
    Cost,
    DatasetInfo,
    Hardware,
    RunRecord,
    Variant,
    write_record,
)
from mimdet.run.config import ModelConfigError, build_model
from mimdet.run.overrides import override_string, parse_override
from mimdet.run.resolve import resolve_run
from sweeps.estimate import PAPER_GPUS, estimate
from sweeps.expand import SweepPlan, expand
from sweeps.filters import compile_filter
from sweeps.runs import Resources
from sweeps.spec import ResourcesSpec, SpecError, SweepSpec, load_spec, parse_spec
from sweeps.store import Store
from tests import REPO
from tests.micro import edited_tiny_config

PAPER = REPO / "mimdet" / "paper"
RATIO = "model.backbone.bottom_up.train_sample_ratio"
TEST_RATIO = "model.backbone.bottom_up.test_sample_ratio"
DECODERS = "model.backbone.bottom_up.num_decoders"
EVAL_SEED = "model.backbone.bottom_up.eval_seed"
LINE = re.compile(r"^(?P<source>[^\n]+?):(?P<line>\d+): (?P<path>[^\n]+?): (?P<problem>[^\n]+)$")

SHIPPED = {  # spec -> (trainings, evaluations)
    "table1.yaml": (2, 2),
    "table2.yaml": (5, 15),
    "table3.yaml": (4, 4),
    "table4.yaml": (4, 4),
    "fig2.yaml": (2, 2),
    "table2_released.yaml": (0, 3),
    "tiny/table1.yaml": (2, 2),
    "tiny/table2.yaml": (3, 6),
    "tiny/table2_long.yaml": (6, 12),
    "tiny/table3.yaml": (4, 4),
    "tiny/table4.yaml": (4, 4),
    "tiny/fig2.yaml": (2, 2),
}


def plan_of(name: str) -> SweepPlan:
    return expand(load_spec(REPO / "sweeps" / name))


def one_line_error(text: str, source: str = "spec.yaml") -> SpecError:
    """The SpecError that loading and expanding ``text`` raises, checked to be one well-formed line."""
    with pytest.raises(SpecError) as caught:
        expand(parse_spec(text, source=source, spec_dir=REPO))
    message = str(caught.value)
    match = LINE.match(message)
    assert match, f"not FILE:LINE: key.path: problem: {message!r}"
    assert match["source"] == source
    assert 1 <= int(match["line"]) <= max(1, len(text.splitlines()))
    return caught.value


# --- the shipped specs -----------------------------------------------------------------------------------


def test_every_shipped_spec_is_tested() -> None:
    found = {str(p.relative_to(REPO / "sweeps")) for p in (REPO / "sweeps").rglob("*.yaml")}
    assert found == set(SHIPPED)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_spec_loads_and_expands(name: str) -> None:
    plan = plan_of(name)
    assert (len(plan.trainings), len(plan.evaluations)) == SHIPPED[name]
    assert plan.runs == plan.trainings + plan.evaluations
    training_ids = {run.run_id for run in plan.trainings}
    assert len(training_ids) == len(plan.trainings)
    assert len({run.run_id for run in plan.evaluations}) == len(plan.evaluations)
    for run in plan.trainings:
        assert run.stage == "train" and run.parent is None
    for run in plan.evaluations:
        assert run.stage == "eval" and (run.parent in training_ids or run.checkpoint)
    for run in plan.runs:
        keys = [parse_override(text)[0] for text in run.overrides]
        assert keys == sorted(keys)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_spec_resources(name: str) -> None:
    spec = load_spec(REPO / "sweeps" / name)
    train = spec.train.resources.to_resources()
    if spec.train.checkpoint:  # evaluations of a released model: one 8-GPU node each
        assert spec.eval is not None and spec.eval.resources.to_resources().gpus == 8
    elif name.startswith("tiny/"):
        assert spec.executor == "local"
        assert train.gpus == 0 and train.max_in_flight == 2
        assert spec.overrides["train.max_iter"] == (3000 if name == "tiny/table2_long.yaml" else 1000)
    else:
        assert train.gpus == PAPER_GPUS  # 4 nodes x 8 GPUs, as the paper trained
        assert spec.overrides["dataloader.train.total_batch_size"] == 64


def test_shipped_runs_build_configs() -> None:
    """Every distinct training of the tiny specs applies its overrides, and its model builds (e.g.
    windows with no decoder and both ratios at 1.0, as the backbone demands)."""
    seen = set()
    for name in SHIPPED:
        if name.startswith("tiny/"):
            for run in plan_of(name).trainings:
                seen.add((run.config_file, run.overrides))
    for config_file, overrides in sorted(seen):
        cfg = resolve_run(config_file, overrides).cfg
        for text in overrides:
            key, value = parse_override(text)
            assert OmegaConf.select(cfg, key) == value, (config_file, text)
        build_model(cfg, "meta")


def test_table2_is_the_papers_upper_triangle() -> None:
    paper = pd.read_csv(PAPER / "table2.csv")
    expected = set(zip(paper.train_ratio, paper.infer_ratio, strict=True))
    for name, ratios in (
        ("table2.yaml", (0.125, 0.25, 0.5, 0.75, 1.0)),
        ("tiny/table2.yaml", (0.25, 0.5, 1.0)),
    ):
        cells = {
            (r.cell["train_sample_ratio"], r.cell["test_sample_ratio"]) for r in plan_of(name).evaluations
        }
        assert cells == {(t, i) for t, i in expected if t in ratios and i in ratios}


def test_table3_and_table4_cover_the_papers_rows() -> None:
    decoders = set(pd.read_csv(PAPER / "table3.csv").num_decoders)
    rows = set(pd.read_csv(PAPER / "table4.csv").row)
    for prefix in ("", "tiny/"):
        assert {r.cell["num_decoders"] for r in plan_of(prefix + "table3.yaml").trainings} == decoders
        assert {r.cell["row"] for r in plan_of(prefix + "table4.yaml").trainings} == rows


@pytest.mark.parametrize("prefix", ["", "tiny/"])
def test_shared_cell_is_one_run_in_every_table(prefix: str) -> None:
    """Table 2's (0.5 -> 1.0), Table 3's 4 decoders, Table 4's row 1 (and Table 1's / Figure 2's MIMDet)."""
    table2 = plan_of(prefix + "table2.yaml")
    table3 = plan_of(prefix + "table3.yaml")
    table4 = plan_of(prefix + "table4.yaml")
    table1 = plan_of(prefix + "table1.yaml")
    fig2 = plan_of(prefix + "fig2.yaml")

    def pick(plan: SweepPlan, **cell: Any) -> tuple[str, str]:
        (evaluation,) = [r for r in plan.evaluations if all(r.cell.get(k) == v for k, v in cell.items())]
        return evaluation.parent or "", evaluation.run_id

    shared = pick(table2, train_sample_ratio=0.5, test_sample_ratio=1.0)
    assert pick(table3, num_decoders=4) == shared
    assert pick(table4, row="row1") == shared
    assert pick(table1, row="mimdet") == shared
    assert pick(fig2, row="mimdet") == shared
    assert pick(table3, num_decoders=1) == pick(table4, row="row2")
    assert [r.run_id for r in table1.runs] == [r.run_id for r in fig2.runs]


def test_run_ids_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = [r.run_id for r in plan_of("table4.yaml").runs]
    monkeypatch.chdir(tmp_path)
    spec = load_spec(REPO / "sweeps" / "table4.yaml")
    assert Path(spec.base_config).is_absolute() and Path(spec.base_config).is_file()
    assert [r.run_id for r in expand(spec).runs] == here


def test_resources_mirror_the_run_dataclass() -> None:
    assert list(ResourcesSpec.model_fields) == list(Resources.__dataclass_fields__)
    assert ResourcesSpec().to_resources() == Resources()


# --- grid forms ------------------------------------------------------------------------------------------

TINY = "base_config: experiments/tiny_mimdet.py\noverrides: {train.max_iter: 300}\n"


def test_product_grid_crosses_axes_in_order() -> None:
    spec = parse_spec(
        f"name: p\n{TINY}train:\n  axes:\n    {RATIO}: [0.25, 0.5]\n    {DECODERS}: [1, 2, 4]\n",
        spec_dir=REPO,
    )
    plan = expand(spec)
    assert [r.cell for r in plan.trainings] == [
        {"train_sample_ratio": t, "num_decoders": d} for t in (0.25, 0.5) for d in (1, 2, 4)
    ]
    assert plan.evaluations == []  # no eval section: no evaluations
    assert plan.trainings[0].overrides == (f"{DECODERS}=1", f"{RATIO}=0.25", "train.max_iter=300")
    assert plan.trainings[0].resources == Resources()


def test_zip_grid_pairs_values() -> None:
    axes = f"    {RATIO}: [0.25, 0.5, 1.0]\n    {DECODERS}: [1, 2, 8]\n"
    text = f"name: z\n{TINY}train:\n  grid: zip\n  axes:\n{axes}"
    plan = expand(parse_spec(text, spec_dir=REPO))
    assert [(r.cell["train_sample_ratio"], r.cell["num_decoders"]) for r in plan.trainings] == [
        (0.25, 1),
        (0.5, 2),
        (1.0, 8),
    ]


def test_rows_grid_with_own_base_config_and_empty_eval() -> None:
    text = (
        f"name: r\n{TINY}train:\n  grid: rows\n  rows:\n    - label: a\n"
        f"    - label: b\n      overrides: {{{DECODERS}: 2}}\n"
        "    - label: c\n      base_config: experiments/tiny_benchmarking.py\n"
        "eval: {}\n"
    )
    plan = expand(parse_spec(text, spec_dir=REPO))
    assert [r.cell for r in plan.trainings] == [{"row": "a"}, {"row": "b"}, {"row": "c"}]
    assert [r.config_file for r in plan.trainings] == ["experiments/tiny_mimdet.py"] * 2 + [
        "experiments/tiny_benchmarking.py"
    ]
    assert plan.trainings[1].overrides == (f"{DECODERS}=2", "train.max_iter=300")
    assert [r.parent for r in plan.evaluations] == [r.run_id for r in plan.trainings]
    assert [r.overrides for r in plan.evaluations] == [r.overrides for r in plan.trainings]


@pytest.mark.parametrize(
    ("label", "problem"),
    [('"a\\nb"', "line feed ('\\n')"), ('"a\\0b"', "NUL ('\\x00')"), ('"\\e[31mred"', "escape ('\\x1b')")],
)
def test_a_row_label_with_a_control_character_is_one_line(label: str, problem: str) -> None:
    """A label is printed in every table and status line: a newline or an escape there would break or
    recolour them (before: accepted, and printed raw)."""
    text = f"name: r\n{TINY}train:\n  grid: rows\n  rows:\n    - label: ok\n    - label: {label}\n"
    error = one_line_error(text)
    assert (error.line, error.path) == (8, "train.rows[1].label"), str(error)
    assert f"holds a control character, {problem} (allowed: printable text)" in error.problem, str(error)


def test_eval_axes_multiply_every_training_and_use_eval_resources() -> None:
    text = (
        f"name: e\n{TINY}train:\n  axes: {{{RATIO}: [0.25, 1.0]}}\n"
        f"eval:\n  axes:\n    {TEST_RATIO}: [0.25, 1.0]\n    model.backbone.bottom_up.eval_seed: [0, 1]\n"
        "  resources: {cpus_per_task: 1, time_min: 5}\n"
    )
    plan = expand(parse_spec(text, spec_dir=REPO))
    assert len(plan.evaluations) == 2 * 4
    first = plan.evaluations[0]
    assert first.cell == {"train_sample_ratio": 0.25, "test_sample_ratio": 0.25, "eval_seed": 0}
    assert first.resources == Resources(cpus_per_task=1, time_min=5)
    assert f"{RATIO}=0.25" in first.overrides and f"{TEST_RATIO}=0.25" in first.overrides


def test_a_test_time_setting_changes_the_evaluations_ids_not_the_trainings() -> None:
    """BatchNorm re-estimated at the test ratio is an evaluation's protocol: the same training serves both."""

    def plan(overrides: str) -> SweepPlan:
        text = (
            f"name: e\nbase_config: experiments/tiny_mimdet.py\noverrides: {{{overrides}}}\n"
            f"train:\n  axes: {{{RATIO}: [0.25]}}\neval:\n  axes: {{{TEST_RATIO}: [1.0]}}\n"
        )
        return expand(parse_spec(text, spec_dir=REPO))

    plain, precise = plan("train.max_iter: 300"), plan("train.max_iter: 300, train.eval_precise_bn_iters: 40")
    assert [run.run_id for run in plain.trainings] == [run.run_id for run in precise.trainings]
    assert plain.evaluations[0].run_id != precise.evaluations[0].run_id


# --- filters ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cell", "kept"),
    [
        (
            "test_sample_ratio >= train_sample_ratio",
            {"train_sample_ratio": 0.5, "test_sample_ratio": 1.0},
            True,
        ),
        (
            "test_sample_ratio >= train_sample_ratio",
            {"train_sample_ratio": 0.5, "test_sample_ratio": 0.25},
            False,
        ),
        ("0.25 < train_sample_ratio <= 0.5", {"train_sample_ratio": 0.5}, True),
        (
            "not (train_sample_ratio == 0.5) or sampling != 'window'",
            {"train_sample_ratio": 0.5, "sampling": "random"},
            True,
        ),
        (
            "sampling == 'window' and train_sample_ratio == 1",
            {"train_sample_ratio": 1.0, "sampling": "window"},
            True,
        ),
        ("train_sample_ratio > -1 and train_sample_ratio < +2", {"train_sample_ratio": 0.5}, True),
    ],
)
def test_filter_semantics(text: str, cell: dict[str, Any], kept: bool) -> None:
    assert compile_filter(text, list(cell) + ["sampling"])(cell) is kept


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "train_sample_ratio.real > 0",
        "(lambda: 1)()",
        "[x for x in ()]",
        "train_sample_ratio + 1 > 0",
        "train_sample_ratio in (0.5,)",
        "train_sample_ratio is None",
        "f'{train_sample_ratio}' == '0.5'",
        "{}['a']",
        "-train_sample_ratio < 0",
        "None",
        "open",
        "(x := 1)",
        "1 if train_sample_ratio else 0",
    ],
)
def test_filter_rejects_everything_outside_the_language(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        compile_filter(text, ["train_sample_ratio"])
    assert "\n" not in str(caught.value)


_NAMES = ["a", "b"]
_atoms = st.one_of(st.sampled_from(_NAMES), st.sampled_from(["0", "1", "-1", "0.5", "0.25", "+1.0"]))
_comparisons = st.tuples(_atoms, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), _atoms).map(" ".join)
_expressions = st.recursive(
    _comparisons,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"not ({e})"),
        st.tuples(_atoms, st.sampled_from(["<", "=="]), _atoms, st.sampled_from(["<=", "!="]), _atoms).map(
            " ".join
        ),
    ),
    max_leaves=6,
)
_values = st.sampled_from([0.125, 0.25, 0.5, 1.0, 0, 1])


@settings(max_examples=150, deadline=None, derandomize=True)
@given(_expressions, _values, _values)
def test_filter_agrees_with_python_on_its_language(text: str, a: float, b: float) -> None:
    expected = bool(eval(text, {"__builtins__": {}}, {"a": a, "b": b}))  # noqa: S307 — generated, trusted
    assert compile_filter(text, _NAMES)({"a": a, "b": b}) is expected


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(max_size=40))
def test_filter_text_is_compiled_or_refused_with_one_line(text: str) -> None:
    try:
        compile_filter(text, _NAMES)
    except ValueError as error:
        assert "\n" not in str(error)


# --- validation: each kind of error, with its line and key path -------------------------------------------

VALID = f"""\
name: t
base_config: experiments/tiny_mimdet.py
overrides:
  train.max_iter: 300
train:
  grid: product
  axes:
    {RATIO}: [0.25, 0.5]
  resources: {{gpus_per_node: 0, max_in_flight: 2}}
eval:
  axes:
    {TEST_RATIO}: [0.5, 1.0]
  filter: test_sample_ratio >= train_sample_ratio
executor: local
"""
_AXIS_LINE = f"    {RATIO}: [0.25, 0.5]\n"


def test_valid_spec_is_valid() -> None:
    plan = expand(parse_spec(VALID, spec_dir=REPO))
    assert (len(plan.trainings), len(plan.evaluations)) == (2, 4)


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "problem"),
    [
        ("executor: local", "executer: local", 14, "executer", "unknown key, did you mean executor?"),
        (
            "  grid: product",
            "  grid: product\n  rsources: {}",
            7,
            "train.rsources",
            "did you mean resources?",
        ),
        ("{gpus_per_node: 0,", "{gpus_per_node: zero,", 9, "train.resources.gpus_per_node", "integer"),
        ("name: t", "name: [t]", 1, "name", "string"),
        ("name: t", "name: t\nroot: ''", 2, "root", "at least 1 character"),  # was: the default ./results
        ("[0.25, 0.5]", "[0.25, 1.5]", 8, f"train.axes.{RATIO}[1]", "not a number in (0, 1]"),
        ("[0.5, 1.0]", "[0.0, 1.0]", 12, f"eval.axes.{TEST_RATIO}[0]", "not a number in (0, 1]"),
        ("[0.25, 0.5]", "[]", 8, f"train.axes.{RATIO}", "empty axis"),
        ("grid: product", "grid: cross", 6, "train.grid", "allowed: 'product', 'zip', 'rows'"),
        (_AXIS_LINE, _AXIS_LINE + f"    {DECODERS}: [1, 2, 4]\n", 9, f"train.axes.{DECODERS}", ""),
        (_AXIS_LINE, _AXIS_LINE + f"    {DECODERS}: [4, 9]\n", 9, f"train.axes.{DECODERS}[1]", "0..8"),
        (
            "train.max_iter: 300",
            "train.max_itr: 300",
            4,
            "overrides.train.max_itr",
            "did you mean: max_iter?",
        ),
        ("train.max_iter: 300", "train.max_iter: fast", 4, "overrides.train.max_iter", "is an int"),
        ("train.max_iter: 300", "train.max_iter: -5", 4, "overrides.train.max_iter", "at least 1 iteration"),
        ("train.max_iter: 300", "train.max_iter: 0", 4, "overrides.train.max_iter", "at least 1 iteration"),
        (
            "train.max_iter: 300",
            "train.checkpointer.max_to_keep: 0",
            4,
            "overrides.train.checkpointer.max_to_keep",
            "train.checkpointer.max_to_keep is 0: 1 or more",
        ),
        (
            "train.max_iter: 300",
            "train.max_iter: 300\n  dataset_paths: {x: /tmp/a.json}",
            5,
            "overrides.dataset_paths",
            "dataset_paths.x is '/tmp/a.json': a pair [instances.json, image folder]",
        ),
        (
            "train.max_iter: 300",
            "train.max_iter: 300\n  model.proposal_generator.nms_thresh: .nan",
            5,
            "overrides.model.proposal_generator.nms_thresh",
            "model.proposal_generator.nms_thresh is nan: a finite number",
        ),
        (
            "train.max_iter: 300",
            "train.epochs: 0",
            4,
            "overrides.train.epochs",
            "train.max_iter: epochs and batch size must be positive, got 0 and",
        ),
        (
            "train.max_iter: 300",
            "dataloader.train.total_batch_size: 0",
            4,
            "overrides.dataloader.train.total_batch_size",
            "epochs and batch size must be positive",
        ),
        (
            "train.max_iter: 300",
            "train.max_iter: 300\n  model.pixel_mean.7: 1",
            5,
            "overrides.model.pixel_mean.7",
            "list index out of range",
        ),
        ("tiny_mimdet.py", "tiny_mimdet_typo.py", 2, "base_config", "config file not found"),
        ("tiny_mimdet.py", "common/tiny.py", 2, "base_config", "not a run config, it sets no model"),
        ("[0.25, 0.5]", "[0.5, 0.50]", 7, "train.axes", "are the same train run"),
        (
            "  filter: test_sample_ratio >= train_sample_ratio",
            "  filter: test_sample_ratio >=",
            13,
            "eval.filter",
            "not a valid filter",
        ),
        (
            "test_sample_ratio >= train_sample_ratio",
            "test_ratio >= 0.5",
            13,
            "eval.filter",
            "unknown axis name 'test_ratio'",
        ),
        (
            "test_sample_ratio >= train_sample_ratio",
            "__import__('os')",
            13,
            "eval.filter",
            "not part of the filter language",
        ),
        (
            "test_sample_ratio >= train_sample_ratio",
            "test_sample_ratio > 1",
            13,
            "eval.filter",
            "keeps no evaluation of the 4 it filters (allowed: a filter that keeps one or more",
        ),
        (
            "test_sample_ratio >= train_sample_ratio",
            "test_sample_ratio >= 'x'",
            13,
            "eval.filter",
            "cannot evaluate",
        ),
        ("name: t\n", "", 1, "name", "required key is missing"),
        (  # before: "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'"
            "name: t\n",
            "name: my sweep!\n",
            1,
            "name",
            "'my sweep!' is not a sweep name (allowed: letters, digits, _ . and -, beginning with a letter",
        ),
        ("[0.25, 0.5]", "[0.25, 0.5", 9, "(YAML syntax)", "expected ',' or ']'"),
        ("executor: local", "executor: local\nname: u", 15, "(YAML syntax)", "duplicate key"),
        (VALID, "", 1, "(top level)", "empty spec"),
        (VALID, "- a\n", 1, "(top level)", "expected a mapping"),
    ],
)
def test_each_error_is_one_line_with_file_line_and_key_path(
    old: str, new: str, line: int, path: str, problem: str
) -> None:
    assert old in VALID
    grid = "  grid: zip\n" if "[1, 2, 4]" in new else "  grid: product\n"
    text = VALID.replace(old, new, 1).replace("  grid: product\n", grid)
    error = one_line_error(text)
    assert (error.line, error.path) == (line, path), str(error)
    assert problem in error.problem
    if "zip" in grid:
        assert "zip axes differ in length" in error.problem


@pytest.mark.parametrize(
    ("spec_line", "override", "model_check"),
    [
        (f"    {RATIO}: [0.0, 0.5]\n", f"{RATIO}=0.0", lambda: check_sample_ratio(0.0, "train_sample_ratio")),
        (_AXIS_LINE + f"    {DECODERS}: [4, 9]\n", f"{DECODERS}=9", lambda: check_num_decoders(9)),
    ],
)
def test_the_spec_refuses_with_the_models_own_line(spec_line: str, override: str, model_check: Any) -> None:
    """One check, in the model: the spec, the check and the model being built all say the same line."""
    problem = one_line_error(VALID.replace(_AXIS_LINE, spec_line)).problem
    with pytest.raises(ValueError) as refused:
        model_check()
    assert str(refused.value) == problem
    assert "(allowed: " in problem
    with pytest.raises(ModelConfigError) as built:
        build_model(resolve_run("tiny_mimdet.py", [override]).cfg, "meta")
    assert str(built.value) == f"the model refuses its settings: {problem}"


_EVAL_AXIS_LINE = f"    {TEST_RATIO}: [0.5, 1.0]\n"


@pytest.mark.parametrize(
    ("key", "values"),
    [
        (DECODERS, "[1, 4]"),
        ("model.backbone.bottom_up.sampling", "[random]"),
        ("optimizer.lr", "[0.001, 0.01]"),
        ("train.seed", "[0, 1]"),
        ("train.init_checkpoint", "[other.pth]"),
    ],
)
def test_an_evaluation_axis_over_a_training_setting_fails_plan_in_one_line(key: str, values: str) -> None:
    """Before: ``sweep plan`` passed; each evaluation then loaded its training's weights into a model of
    other settings and failed (``num_decoders``), or ignored the key and gave the same number under
    another label (``optimizer.lr``)."""
    error = one_line_error(VALID.replace(_EVAL_AXIS_LINE, _EVAL_AXIS_LINE + f"    {key}: {values}\n"))
    assert (error.line, error.path) == (13, f"eval.axes.{key}"), str(error)
    assert "a training setting" in error.problem
    assert "allowed" in error.problem and TEST_RATIO in error.problem


@pytest.mark.parametrize(
    ("key", "values"),
    [
        (EVAL_SEED, "[0, 1]"),
        ("model.roi_heads.box_predictor.test_score_thresh", "[0.05, 0.5]"),
        ("dataloader.test.dataset.names", "[synthetic_val, synthetic_train]"),
    ],
)
def test_an_evaluation_axis_over_a_test_time_setting_plans(key: str, values: str) -> None:
    text = VALID.replace(_EVAL_AXIS_LINE, _EVAL_AXIS_LINE + f"    {key}: {values}\n")
    assert len(expand(parse_spec(text, spec_dir=REPO)).evaluations) == 2 * 2 * 2  # trainings, ratios, values


BOTTOM_UP = "model.backbone.bottom_up"


@pytest.mark.parametrize(
    ("switch", "good", "bad", "allowed"),
    [
        ("sampling", "random", "randm", "'random', 'window'"),
        ("fpn_inputs", "hybrid", "vitt", "'hybrid', 'vit'"),
        ("c5_pool", "avg", "mean", "'avg', 'max'"),
        ("decoder_fill", "convstem", "conv_stem", "'mask_token', 'convstem'"),
    ],
)
@pytest.mark.parametrize("where", ["train", "overrides"])
def test_a_bad_choice_of_a_backbone_switch_fails_plan_in_one_line(
    switch: str, good: str, bad: str, allowed: str, where: str
) -> None:
    """Before: every value passed ``sweep plan``; the run then failed without a record."""
    key = f"{BOTTOM_UP}.{switch}"
    if where == "train":
        text = VALID.replace(_AXIS_LINE, _AXIS_LINE + f"    {key}: [{good}, {bad}]\n")
        line, path = 9, f"train.axes.{key}[1]"
    else:
        text = VALID.replace("  train.max_iter: 300\n", f"  train.max_iter: 300\n  {key}: {bad}\n")
        line, path = 5, f"overrides.{key}"
    error = one_line_error(text)
    assert (error.line, error.path) == (line, path), str(error)
    assert error.problem == f"{bad!r} is not allowed for {switch} (allowed: {allowed})"


def test_a_base_config_with_a_bad_choice_fails_plan_in_one_line(tmp_path: Path) -> None:
    config = edited_tiny_config(tmp_path, "model.backbone.bottom_up.sampling = 'randm'")
    error = one_line_error(VALID.replace("experiments/tiny_mimdet.py", str(config)))
    assert (error.line, error.path) == (2, "base_config"), str(error)
    assert error.problem.endswith(
        "model.backbone.bottom_up.sampling: 'randm' is not allowed (allowed: 'random', 'window')"
    )


def test_a_spec_file_missing_or_not_text_is_one_line(tmp_path: Path) -> None:
    """Before: the path twice (OSError's text) and Python's codec message."""
    with pytest.raises(SpecError) as missing:
        load_spec(tmp_path / "nothing.yaml")
    assert (
        str(missing.value) == f"{tmp_path / 'nothing.yaml'}:1: (file): cannot read: No such file or directory"
    )
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(
        SpecError, match=r"latin1\.yaml:1: \(file\): not UTF-8 text \(byte 0xe9 at offset 9\)$"
    ):
        load_spec(tmp_path / "latin1.yaml")


# --- hostile and oversized specs: refused before they cost anything ---------------------------------------


def _laughs(levels: int) -> str:
    """A "billion laughs": each alias list names the one before it 9 times (9**levels values)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    return "\n".join([*lines, VALID.replace("  grid: product", f"  grid: product\n  laughs: *a{levels - 1}")])


def test_exponential_aliases_are_refused_before_they_are_expanded() -> None:
    """9 levels are 387 million values: refused from the parser's events, in a few MB."""
    tracemalloc.start()
    try:
        error = one_line_error(_laughs(9))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.path == "(YAML)" and "aliases repeat more than 100,000 values" in error.problem
    assert error.line == 6 and peak < 50 * 2**20, (error.line, peak)  # a5: 9**6 values


def test_a_few_aliases_are_fine() -> None:
    text = VALID.replace("[0.25, 0.5]", "&ratios [0.25, 0.5]").replace("[0.5, 1.0]", "*ratios")
    assert len(expand(parse_spec(text, spec_dir=REPO)).runs) == 2 + 3


@pytest.mark.parametrize(
    ("deep", "line"),
    [
        ("train.seed: " + "[" * 5000 + "]" * 5000, 8),  # flow style
        ("x:\n" + "".join("  " * (4 + i) + f"k{i}:\n" for i in range(200)) + "  " * 204 + "v: 1", 70),
    ],
)
def test_deep_nesting_is_one_line_not_a_recursion_error(deep: str, line: int) -> None:
    text = VALID.replace(f"    {RATIO}: [0.25, 0.5]", f"    {deep}")
    error = one_line_error(text)
    assert error.path == "(YAML)" and "nested deeper than 64 levels" in error.problem
    assert error.line == line


def test_a_number_python_cannot_read_is_one_line() -> None:
    error = one_line_error(VALID.replace("300", "9" * 5000))
    assert (error.line, error.path) == (4, "(YAML)") and "5,000 digits" in error.problem


def test_an_oversized_spec_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(VALID + ("# " + "x" * 1000 + "\n") * 5000)
    with pytest.raises(SpecError, match=r"big\.yaml:1: \(file\): larger than 4 MiB"):
        load_spec(path)


def _load_in_thread(path: Path, timeout_s: float = 20) -> SweepSpec | SpecError:
    """``load_spec``'s answer, or a test failure where it waits instead of answering."""
    answers: list[SweepSpec | SpecError] = []

    def load() -> None:
        try:
            answers.append(load_spec(path))
        except SpecError as error:
            answers.append(error)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert answers, f"load_spec({path}) still waits after {timeout_s:.0f} s"
    return answers[0]


def test_a_fifo_nothing_writes_to_is_an_empty_spec_not_a_wait(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.yaml")
    error = _load_in_thread(tmp_path / "fifo.yaml")
    assert isinstance(error, SpecError) and "fifo.yaml:1: (top level): empty spec" in str(error)


def test_a_base_config_that_is_a_fifo_is_one_line_not_a_wait(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.py")
    spec = tmp_path / "spec.yaml"
    spec.write_text(VALID.replace("experiments/tiny_mimdet.py", str(tmp_path / "config.py")))
    error = _load_in_thread(spec)
    assert isinstance(error, SpecError) and (error.line, error.path) == (2, "base_config")
    assert error.problem == f"{tmp_path / 'config.py'}: not a plain file (a folder, a FIFO or a device)"


def test_a_spec_from_a_pipe_is_read_until_its_writer_closes_it(tmp_path: Path) -> None:
    """``sweep plan <(generate-spec)``: the writer may be slower than the reader."""
    pipe = tmp_path / "spec.yaml"
    os.mkfifo(pipe)
    half = len(VALID) // 2

    def write() -> None:
        with open(pipe, "w") as handle:
            handle.write(VALID[:half])
            handle.flush()
            time.sleep(0.5)
            handle.write(VALID[half:])

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.2)  # the writer has opened its end
    spec = _load_in_thread(pipe)
    assert isinstance(spec, SweepSpec), spec


def _seeds_grid(trainings: int, evaluations: int, extra: str = "") -> str:
    return (
        VALID.replace(f"{RATIO}: [0.25, 0.5]", f"train.seed: {list(range(trainings))}")
        .replace(
            f"{TEST_RATIO}: [0.5, 1.0]", f"{TEST_RATIO}: [1.0]\n    {EVAL_SEED}: {list(range(evaluations))}"
        )
        .replace("  filter: test_sample_ratio >= train_sample_ratio\n", "")
        + extra
    )


def test_a_grid_over_max_runs_is_refused_and_max_runs_allows_it() -> None:
    error = one_line_error(_seeds_grid(200, 199))
    assert (error.line, error.path) == (7, "train.axes")
    assert error.problem.startswith("the grid makes 40,000 runs (200 trainings, 199 evaluations each)")
    assert "more than max_runs 5,000" in error.problem and "set max_runs: 40000" in error.problem
    spec = parse_spec(_seeds_grid(200, 199, "max_runs: 40000\n"), spec_dir=REPO)
    assert spec.max_runs == 40_000
    assert len(expand(parse_spec(_seeds_grid(70, 70), spec_dir=REPO)).runs) == 70 * 71  # 4,970


@pytest.mark.parametrize(
    ("resources", "path", "problem"),
    [
        (
            'partition: "gpu\\ntouch /tmp/owned #"',
            "train.resources.partition",
            "control character, line feed",
        ),
        ("account: a b", "train.resources.account", "'a b' is not a SLURM name"),
        ("qos: q;rm", "train.resources.qos", "'q;rm' is not a SLURM name"),
        ('constraint: "a100\\tib"', "train.resources.constraint", "control character, tab"),
        (
            'sbatch_extra: {"mail-type\\nx": END}',
            "train.resources.sbatch_extra.mail-type\nx",
            "not an sbatch option",
        ),
        ("sbatch_extra: {output: /tmp/x}", "train.resources.sbatch_extra.output", "set by the sweep engine"),
        ("sbatch_extra: {partition: gpu}", "train.resources.sbatch_extra.partition", "resources.partition"),
        ('sbatch_extra: {comment: "a\\rb"}', "train.resources.sbatch_extra.comment", "carriage return"),
        ('sbatch_extra: {comment: "a\\u202eb"}', "train.resources.sbatch_extra.comment", "right-to-left"),
        ('sbatch_extra: {comment: ""}', "train.resources.sbatch_extra.comment", "is empty"),
        ("time_min: 99999999999", "train.resources.time_min", "less than or equal to 4294967294"),
        ("cpus_per_task: 70000", "train.resources.cpus_per_task", "less than or equal to 65534"),
        ("mem_gb: .inf", "train.resources.mem_gb", "finite number"),
    ],
)
def test_what_reaches_sbatch_is_checked_at_load(resources: str, path: str, problem: str) -> None:
    error = one_line_error(VALID.replace("max_in_flight: 2}", f"max_in_flight: 2, {resources}}}"))
    assert (error.line, error.path) == (9, path) and problem in error.problem, str(error)


def test_paths_that_reach_the_job_script_are_checked_at_load() -> None:
    error = one_line_error(VALID + 'root: "/tmp/results\\n#SBATCH --wrap=x"\n')
    assert (error.line, error.path) == (15, "root") and "control character, line feed" in error.problem
    error = one_line_error(VALID + "root: /tmp/100%results\n")
    assert error.path == "root" and "'%'" in error.problem
    error = one_line_error(VALID + 'root: " "\n')
    assert error.path == "root" and "' ' is only white space" in error.problem
    error = one_line_error(VALID.replace("experiments/tiny_mimdet.py", '"experiments/tiny\\x1bmimdet.py"'))
    assert error.path == "base_config" and "escape" in error.problem


def test_ordinary_scheduler_settings_pass() -> None:
    extra = '"mail-type": END, comment: "it\'s Table 2; $HOME", gres: "gpu:a100:2"'
    settings = 'partition: "gpu,gpu-long", account: proj_1, qos: high, constraint: a100&ib|h100, '
    spec = parse_spec(
        VALID.replace("max_in_flight: 2}", f"max_in_flight: 2, {settings}sbatch_extra: {{{extra}}}}}"),
        spec_dir=REPO,
    )
    assert spec.train.resources.sbatch_extra["comment"] == "it's Table 2; $HOME"


# --- 100 generated malformed specs ---------------------------------------------------------------------

BASE_DATA: dict[str, Any] = {
    "name": "fuzz",
    "base_config": "experiments/tiny_mimdet.py",
    "overrides": {"train.max_iter": 300},
    "train": {"grid": "product", "axes": {RATIO: [0.25, 0.5]}, "resources": {"gpus_per_node": 0}},
    "eval": {"axes": {TEST_RATIO: [0.5, 1.0]}, "filter": "test_sample_ratio >= train_sample_ratio"},
    "executor": "local",
}
ROWS_DATA: dict[str, Any] = {
    **BASE_DATA,
    "train": {"grid": "rows", "rows": [{"label": "a"}, {"label": "b", "overrides": {DECODERS: 1}}]},
    "eval": {"axes": {TEST_RATIO: [1.0]}},
}
SECTIONS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {  # where unknown keys go
    "top": ((), BASE_DATA),
    "train": (("train",), BASE_DATA),
    "resources": (("train", "resources"), BASE_DATA),
    "eval": (("eval",), BASE_DATA),
    "row": (("train", "rows", 1), ROWS_DATA),
}
FIELDS = {
    "name", "table", "base_config", "root", "overrides", "train", "eval", "executor", "grid", "axes", "rows",
    "resources", "filter", "label", "nodes", "gpus_per_node", "cpus_per_task", "mem_gb", "time_min",
    "partition", "account", "qos", "constraint", "sbatch_extra", "max_in_flight",
}  # fmt: skip


def _mutated(data: dict[str, Any], path: tuple[Any, ...], value: Any = None, *, delete: bool = False) -> Any:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


_words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
_unknown_keys = _words.filter(lambda w: w not in FIELDS)
_bad_ratios = st.one_of(
    st.floats(max_value=0.0, allow_nan=False),
    st.floats(min_value=1.0, exclude_min=True),
    st.just(float("nan")),
    st.sampled_from(["half", True, None, [0.5]]),
)
_bad_filters = st.sampled_from(
    [
        "__import__('os')",
        "test_sample_ratio >=",
        "unknown_axis > 0",
        "open('x')",
        "test_sample_ratio.real",
        "[1]",
        "test_sample_ratio + 1 > 0",
        "lambda: 0",
        "test_sample_ratio >= 'a'",
        "",
    ]
)
_wrong_types = st.sampled_from(
    [
        (("name",), 3),
        (("name",), ["a"]),
        (("base_config",), {"a": 1}),
        (("overrides",), [1, 2]),
        (("train",), "product"),
        (("train", "axes"), [RATIO]),
        (("train", "axes", RATIO), 0.5),
        (("train", "resources"), 4),
        (("train", "resources", "nodes"), "four"),
        (("train", "resources", "nodes"), 1.5),
        (("train", "resources", "nodes"), 0),
        (("train", "resources", "mem_gb"), "lots"),
        (("train", "resources", "sbatch_extra"), {"gres": 8}),
        (("eval",), [1]),
        (("eval", "filter"), 5),
        (("executor",), "cloud"),
        (("table",), "table9"),
        (("root",), 1),
    ]
)
_config_sections = st.sampled_from(["train", "model.backbone.bottom_up", "dataloader.train", "optimizer"])

MUTATIONS = st.one_of(
    st.sampled_from(["name", "base_config", "train"]).map(
        lambda key: _mutated(BASE_DATA, (key,), delete=True)
    ),
    st.tuples(st.sampled_from(sorted(SECTIONS)), _unknown_keys, st.integers()).map(
        lambda t: _mutated(SECTIONS[t[0]][1], (*SECTIONS[t[0]][0], t[1]), t[2])
    ),
    _wrong_types.map(lambda t: _mutated(BASE_DATA, t[0], t[1])),
    st.tuples(st.sampled_from([("train", "axes", RATIO), ("eval", "axes", TEST_RATIO)]), _bad_ratios).map(
        lambda t: _mutated(BASE_DATA, t[0], [0.5, t[1]])
    ),
    _bad_ratios.map(lambda r: _mutated(BASE_DATA, ("overrides", RATIO), r)),
    st.sampled_from([("train", "axes", RATIO), ("eval", "axes", TEST_RATIO)]).map(
        lambda path: _mutated(BASE_DATA, path, [])
    ),
    _bad_filters.map(lambda f: _mutated(BASE_DATA, ("eval", "filter"), f)),
    st.tuples(_config_sections, _words).map(
        lambda t: _mutated(BASE_DATA, ("overrides", f"{t[0]}.zz_{t[1]}"), 1)
    ),
    st.sampled_from([9, -1, 2.5, "four"]).map(
        lambda n: _mutated(BASE_DATA, ("train", "axes", DECODERS), [1, n])
    ),
    st.sampled_from(["fast", 1.5, [300], True]).map(
        lambda v: _mutated(BASE_DATA, ("overrides", "train.max_iter"), v)
    ),
    _words.filter(lambda w: w not in ("product", "zip", "rows")).map(
        lambda g: _mutated(BASE_DATA, ("train", "grid"), g)
    ),
    st.just(_mutated(_mutated(BASE_DATA, ("train", "grid"), "zip"), ("train", "axes", DECODERS), [1, 2, 4])),
    st.sampled_from([[0.5, 0.5], [0.5, 0.500000000000001]]).map(
        lambda v: _mutated(BASE_DATA, ("train", "axes", RATIO), v)
    ),
    _words.map(lambda w: _mutated(BASE_DATA, ("base_config",), f"experiments/zz_{w}.py")),
    st.just(_mutated(ROWS_DATA, ("train", "rows", 1, "label"), "a")),
    st.just(_mutated(ROWS_DATA, ("train", "rows"), [])),
    st.just(_mutated(ROWS_DATA, ("train", "axes"), {RATIO: [0.5]})),
    st.just(_mutated(BASE_DATA, ("train", "rows"), [{"label": "a"}])),
    st.just(_mutated(BASE_DATA, ("eval", "axes", "model.backbone.bottom_up.zz_train_sample_ratio"), [0.5])),
)


def _yaml(data: Any) -> str:
    stream = io.StringIO()
    YAML(typ="safe").dump(data, stream)
    return stream.getvalue()


@settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(MUTATIONS)
def test_generated_malformed_specs_each_give_one_line(data: dict[str, Any]) -> None:
    one_line_error(_yaml(data), source="fuzz.yaml")


def test_unmutated_fuzz_bases_are_valid() -> None:
    for data in (BASE_DATA, ROWS_DATA):
        expand(parse_spec(_yaml(data), spec_dir=REPO))


# --- override text ----------------------------------------------------------------------------------------

_override_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=12),
    ),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(_override_values)
def test_override_text_reads_back_as_the_value_or_is_refused(value: Any) -> None:
    try:
        text = override_string("a.b", value)
    except ValueError:
        return
    key, parsed = parse_override(text)
    assert key == "a.b"
    assert json.dumps(parsed, sort_keys=True) == json.dumps(value, sort_keys=True)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.5, "0.5"), (1.0, "1.0"), (4, "4"), (True, "true"), (None, "null"), ("window", "window"),
     ("1.0", "'1.0'"), ("a b", "'a b'"), ([27, 33], "[27,33]"), (["x", 0.5], "[x,0.5]")],
)  # fmt: skip
def test_override_text_is_hydra_syntax(value: Any, text: str) -> None:
    assert override_string("k", value) == f"k={text}"


# --- cost estimate ---------------------------------------------------------------------------------------


def _record(
    run_id: str, variant: Variant, *, dataset: str = "coco_2017_train", gpus: int = 8, **cost: Any
) -> RunRecord:
    return example_record(
        run_id,
        variant=variant,
        box=50.0,
        mask=45.0,
        dataset=DatasetInfo(dataset, "coco_2017_val"),
        cost=Cost(
            cost.get("wall_s"), cost.get("sec_per_iter"), cost.get("mem_bytes"), "cuda_max_allocated", None
        ),
        hardware=Hardware("cuda" if gpus else "cpu", "NVIDIA H100" if gpus else None, gpus, None),
    )


def _vit_b(ratio: float) -> Variant:
    return example_variant(train_sample_ratio=ratio)


def test_estimate_from_the_paper(tmp_path: Path) -> None:
    plan = plan_of("table2.yaml")
    cost = estimate(plan, Store(tmp_path))
    by_ratio = {r.cell["train_sample_ratio"]: cost.runs[r.run_id] for r in plan.trainings}
    assert by_ratio[0.5].gpu_hours == pytest.approx(20.3 * 32)
    assert by_ratio[0.5].memory_gb == pytest.approx(19.9)
    assert by_ratio[0.5].source == "paper"
    assert by_ratio[1.0].memory_gb is None and "out of memory" in by_ratio[1.0].note
    assert cost.total_gpu_hours == pytest.approx((16.0 + 16.5 + 20.3 + 27.2 + 31.0) * 32)
    assert cost.peak_memory_gb == pytest.approx(28.5) and cost.peak_memory.source == "paper"
    assert cost.unknown == []
    assert all(cost.runs[r.run_id].gpu_hours is None for r in plan.evaluations)
    table4 = estimate(plan_of("table4.yaml"), Store(tmp_path))
    assert [table4.runs[r.run_id].gpu_hours for r in plan_of("table4.yaml").trainings] == pytest.approx(
        [20.3 * 32, 15.5 * 32, 17.5 * 32, 18.4 * 32]
    )


def test_estimate_scales_the_paper_to_the_planned_iterations(tmp_path: Path) -> None:
    text = (
        (REPO / "sweeps" / "table3.yaml")
        .read_text()
        .replace(
            "dataloader.train.total_batch_size: 64",
            "dataloader.train.total_batch_size: 64\n  train.max_iter: 6750",
        )
    )
    plan = expand(parse_spec(text, spec_dir=REPO / "sweeps"))
    cost = estimate(plan, Store(tmp_path))
    eight = next(r for r in plan.trainings if r.cell["num_decoders"] == 8)
    assert cost.runs[eight.run_id].gpu_hours == pytest.approx(27.0 * 32 / 10)
    assert "6750 iterations" in cost.runs[eight.run_id].note


def test_estimate_prefers_measured_records(tmp_path: Path) -> None:
    store = Store(tmp_path)
    plan = plan_of("table2.yaml")
    runs = {r.cell["train_sample_ratio"]: r for r in plan.trainings}
    own = _record(runs[0.5].run_id, _vit_b(0.5), wall_s=36_000.0, mem_bytes=10 * 2**30)
    write_record(own, store.run_dir(own.run_id) / "record.json")
    for i, seconds in enumerate((0.4, 0.5, 0.6)):  # other runs of the 0.75 variant: the median counts
        similar = _record(f"similar{i}", _vit_b(0.75), sec_per_iter=seconds, mem_bytes=(20 + i) * 2**30)
        write_record(similar, store.run_dir(similar.run_id) / "record.json")
    cpu = _record("cpu0", _vit_b(0.25), gpus=0, wall_s=100.0)  # another device: not a measure for GPUs
    write_record(cpu, store.run_dir(cpu.run_id) / "record.json")

    cost = estimate(plan, store)
    assert cost.runs[runs[0.5].run_id].gpu_hours == pytest.approx(10 * 8)
    assert cost.runs[runs[0.5].run_id].memory_gb == pytest.approx(10)
    assert cost.runs[runs[0.5].run_id].source == "measured"
    assert cost.runs[runs[0.75].run_id].gpu_hours == pytest.approx(0.5 * 8 * 67_500 / 3600)
    assert cost.runs[runs[0.75].run_id].memory_gb == pytest.approx(21)
    assert "3 similar" in cost.runs[runs[0.75].run_id].note
    assert cost.runs[runs[0.25].run_id].source == "paper"


def test_estimate_ignores_a_record_of_another_training_in_the_runs_folder(tmp_path: Path) -> None:
    """A record copied into a run's folder from another training (status calls it failed, with the
    mismatch) measured that training: before, its wall time was this run's estimate."""
    store = Store(tmp_path)
    plan = plan_of("table2.yaml")
    run = next(r for r in plan.trainings if r.cell["train_sample_ratio"] == 0.5)
    for index, (variant, dataset) in enumerate(((_vit_b(0.25), "coco_2017_train"), (_vit_b(0.5), "other"))):
        stranger = _record(run.run_id, variant, dataset=dataset, wall_s=36.0)
        write_record(stranger, store.run_dir(run.run_id) / "record.json")
        figures = estimate(plan, store).runs[run.run_id]
        assert figures.source == "paper" and figures.gpu_hours == pytest.approx(20.3 * 32), index


def test_estimate_without_a_source_says_so(tmp_path: Path) -> None:
    plan = plan_of("tiny/table2.yaml")
    cost = estimate(plan, Store(tmp_path))
    assert cost.unknown == [r.run_id for r in plan.trainings]
    assert cost.total_gpu_hours == 0 and cost.peak_memory_gb is None
    assert all("no record" in cost.runs[r.run_id].note for r in plan.trainings)


@pytest.mark.parametrize(
    ("train", "eval_section", "path", "problem"),
    [
        (
            "  checkpoint: m.pth\n  axes: {train.max_iter: [1, 2]}\n",
            "eval: {}\n",
            "train.axes",
            "not trained",
        ),
        ("  checkpoint: m.pth\n  grid: rows\n", "eval: {}\n", "train.grid", "not trained"),
        ("  checkpoint: m.pth\n", "", "train.checkpoint", "add an eval section"),
        ("  checkpoint: ''\n", "eval: {}\n", "train.checkpoint", "at least 1 character"),
        (  # before: a RuntimeError traceback from pathlib, "Could not determine home directory."
            "  checkpoint: ~no-such-user/m.pth\n",
            "eval: {}\n",
            "train.checkpoint",
            "~no-such-user is no user here (allowed: ~ or ~USER of a user here, or a path without ~)",
        ),
    ],
)
def test_a_checkpoint_spec_evaluates_and_trains_nothing(
    train: str, eval_section: str, path: str, problem: str
) -> None:
    text = f"name: c\nbase_config: tiny_mimdet.py\ntrain:\n{train}{eval_section}"
    error = one_line_error(text)
    assert error.path == path and problem in error.problem, str(error)


def test_a_checkpoint_spec_expands_to_evaluations_of_that_file(tmp_path: Path) -> None:
    text = f"name: c\nbase_config: tiny_mimdet.py\ntrain:\n  checkpoint: {tmp_path}/m.pth\n"
    plan = expand(parse_spec(text + f"eval:\n  axes: {{{TEST_RATIO}: [0.5, 1.0]}}\n", spec_dir=REPO))
    assert plan.trainings == [] and [run.parent for run in plan.evaluations] == [None, None]
    assert {run.checkpoint for run in plan.evaluations} == {f"{tmp_path}/m.pth"}
    argv = plan.evaluations[0].train_argv(tmp_path / "run")
    assert "--eval-only" in argv and f"train.init_checkpoint={tmp_path}/m.pth" in argv
