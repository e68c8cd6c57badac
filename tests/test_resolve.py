"""The one resolver of a config file plus overrides (``mimdet.run.resolve``), and the sweep engine's copy
of its facts (``sweeps.config_cache.run_facts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mimdet.run.resolve
from mimdet.run.config import ConfigFileError
from mimdet.run.overrides import OverrideError
from mimdet.run.resolve import RunFactsError, resolve_run
from sweeps import config_cache
from tests.micro import edited_tiny_config

BOTTOM_UP = "model.backbone.bottom_up"


def counting_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The config files ``mimdet.run.resolve`` loads from now on."""
    loaded: list[str] = []
    load = mimdet.run.resolve.load_config

    def counted(config_file: Any, *args: Any) -> Any:
        loaded.append(str(config_file))
        return load(config_file, *args)

    monkeypatch.setattr(mimdet.run.resolve, "load_config", counted)
    return loaded


def test_a_config_file_is_loaded_once_and_each_run_gets_its_own_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = counting_loads(monkeypatch)
    config = str(edited_tiny_config(tmp_path))  # a file no other test has loaded
    first = resolve_run(config)
    second = resolve_run(config, [f"{BOTTOM_UP}.train_sample_ratio=0.25"])
    assert loaded == [config]
    first.cfg.train.output_dir = "edited"
    assert resolve_run(config).cfg.train.output_dir != "edited"
    assert second.cfg.model.backbone.bottom_up.train_sample_ratio == 0.25
    assert first.cfg.model.backbone.bottom_up.train_sample_ratio == 0.5


def test_an_override_changes_the_variant() -> None:
    base = resolve_run("tiny_mimdet.py").facts
    varied = resolve_run("tiny_mimdet.py", [f"{BOTTOM_UP}.num_decoders=2", "train.max_iter=7"]).facts
    assert (base.variant.num_decoders, varied.variant.num_decoders) == (4, 2)
    assert (varied.iterations, varied.dataset_train) == (7, base.dataset_train)
    assert resolve_run("tiny_benchmarking.py").facts.variant.model == "benchmarking"


def test_overrides_are_checked_and_one_that_cannot_be_applied_is_refused_too() -> None:
    with pytest.raises(OverrideError, match="did you mean: max_iter"):
        resolve_run("tiny_mimdet.py", ["train.max_itr=5"])
    with pytest.raises(OverrideError, match=r"^bad override 'model.pixel_mean.7=1': list index out of range"):
        resolve_run("tiny_mimdet.py", ["model.pixel_mean.7=1"])


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["train.log_period=0"], "train.log_period is 0: 1 or more (iterations between log lines)"),
        (["train.checkpointer.period=-1"], "train.checkpointer.period is -1: 1 or more (iterations between"),
        (
            ["train.max_iter=2", "dataloader.train.total_batch_size=-2"],
            "dataloader.train.total_batch_size is -2: 1 or",
        ),
        (["optimizer.lr=nan"], "optimizer.lr is nan: a finite number of 0 or more"),
        (["optimizer.lr=inf"], "optimizer.lr is inf: a finite number of 0 or more"),
        (["optimizer.lr=-1e-3"], "optimizer.lr is -0.001: a finite number of 0 or more"),
        (
            ["optimizer.betas=[0.9,1.5]"],
            "optimizer: AdamW refuses its settings: Invalid beta parameter at index 1",
        ),
        (["optimizer.betas=[0.9]"], "optimizer: AdamW refuses its settings: list index out of range"),
        (["optimizer.eps=-1"], "optimizer: AdamW refuses its settings: Invalid epsilon value: -1"),
        (
            ["optimizer.weight_decay=-0.1"],
            "optimizer: AdamW refuses its settings: Invalid weight_decay value",
        ),
        (
            ["train.seed=-1"],
            "train.seed is -1: 0 or more (for a negative one detectron2 draws a seed at random",
        ),
        (["train.max_iter=99999999999999999999999"], "train.max_iter is 99999999999999999999999: at most 2"),
        (["dataloader.train.num_workers=-1"], "dataloader.train.num_workers is -1: 0 or more (data-loader"),
        (["dataloader.test.num_workers=-1"], "dataloader.test.num_workers is -1: 0 or more (data-loader"),
        (["train.checkpointer.max_to_keep=0"], "train.checkpointer.max_to_keep is 0: 1 or more (checkpoints"),
        (["train.seed=4294967296"], "train.seed is 4294967296: from 0 to 2**32 - 1"),
        (
            [f"{BOTTOM_UP}.eval_seed=99999999999999999999999"],
            f"{BOTTOM_UP}.eval_seed is 99999999999999999999999: from 0 to 2**32 - 1",
        ),
        (
            ["model.roi_heads.positive_fraction=nan"],
            "model.roi_heads.positive_fraction is nan: a finite number",
        ),
        (  # was: completed, with no predictions and box AP null
            ["model.proposal_generator.nms_thresh=nan"],
            "model.proposal_generator.nms_thresh is nan: a finite number",
        ),
        (  # was: completed, trained as if 0
            [f"{BOTTOM_UP}.drop_path_rate=nan"],
            f"{BOTTOM_UP}.drop_path_rate is nan: a finite number",
        ),
        (["model.pixel_std=[58.0,inf,57.0]"], "model.pixel_std.1 is inf: a finite number"),
        (["lr_multiplier.warmup_length=nan"], "lr_multiplier.warmup_length is nan: a finite number"),
        (["lr_multiplier.warmup_length=2.0"], "lr_multiplier.warmup_length is 2.0: a fraction from 0 to 1"),
        (
            ["train.lr_step_epochs=[11,9]"],
            "train.lr_step_epochs is [11, 9]: epochs in increasing order, each",
        ),
        (
            ["train.lr_step_epochs=[-1,5]"],
            "train.lr_step_epochs is [-1, 5]: epochs in increasing order, each",
        ),
        (
            ["train.lr_step_epochs=[9,12]"],
            "train.lr_step_epochs is [9, 12]: epochs in increasing order, each",
        ),
        (
            ["train.lr_step_epochs=[5]"],
            "lr_multiplier: WarmupParamScheduler refuses its settings: MultiStep scheduler requires a list",
        ),
        (
            ["dataloader.train.mapper.image_format=XYZ"],
            "dataloader.train.mapper.image_format is 'XYZ': a format detectron2 reads images in (allowed:",
        ),
        (
            ["dataset_paths={bad_val:/tmp/a.json}"],
            "dataset_paths.bad_val is '/tmp/a.json': a pair [instances.json, image folder]",
        ),
        (
            ["dataset_paths={bad_val:[/tmp/a.json]}"],
            "dataset_paths.bad_val is ['/tmp/a.json']: a pair [instances.json, image folder]",
        ),
    ],
)
def test_a_setting_a_run_cannot_train_or_repeat_with_is_refused(overrides: list[str], expected: str) -> None:
    """Before: each passed, and the run failed at its first iteration in a traceback (a ZeroDivisionError,
    detectron2's batch-size assertion, torch's "Invalid learning rate"), diverged at once (``lr=inf``),
    failed in a traceback once its model was built (torch's optimizer checks, numpy's refusal of a seed of
    2**32, torch's "Overflow when unpacking long long", torch's DataLoader on -1 workers, fvcore's bare
    AssertionError on keeping 0 checkpoints, detectron2's time estimate's OverflowError after the first
    checkpoints), or trained with a seed detectron2 drew at random (``train.seed=-1``), recorded as -1.
    A NaN trained as if 0 or predicted nothing, both recorded as completed; a warm-up or steps out of
    range, an unknown image format and a dataset path that is no pair failed in a traceback."""
    with pytest.raises(OverrideError) as error:
        resolve_run("tiny_mimdet.py", overrides)
    assert str(error.value).startswith(expected)


def test_a_learning_rate_of_zero_and_periods_of_one_run() -> None:
    resolve_run("tiny_mimdet.py", ["optimizer.lr=0", "train.log_period=1", "train.checkpointer.period=1"])
    resolve_run("tiny_mimdet.py", ["train.checkpointer.max_to_keep=null", "dataloader.train.num_workers=0"])
    resolve_run("tiny_mimdet.py", ["train.max_iter=2147483647", "train.seed=4294967295"])
    resolve_run(
        "tiny_mimdet.py", ["lr_multiplier.warmup_length=0", "dataloader.train.mapper.image_format=BGR"]
    )
    resolve_run("tiny_mimdet.py", ["dataset_paths={mine:[/data/a.json,/data/img]}"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", ": not a config: its top level is a list (allowed: a mapping of sections"),
        ("", ": not a config: its top level is empty (allowed: a mapping of sections"),
        (
            "model: 5\ndataloader: 1\noptimizer: 2\nlr_multiplier: 3\ntrain: 4\n",
            ": not a run config: its model is 5, not a section (a run config's model, dataloader",
        ),
        ("a: 1\nb: [\n", ":3: YAML syntax error: while parsing a flow node, expected the node content"),
    ],
    ids=["list", "empty", "scalar-sections", "syntax-error"],
)
def test_a_yaml_config_that_is_not_a_mapping_of_sections_is_one_line_naming_it(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Before: a traceback each (omegaconf's, or ``argument of type 'int' is not iterable`` from a check);
    a syntax error named no line, and a YAML file in the checkout was said to fail at
    ``mimdet/run/config.py:68``, a frame of this project's code."""
    config = tmp_path / "broken.yaml"
    config.write_text(text)
    with pytest.raises(ConfigFileError) as error:
        resolve_run(config)
    assert str(error.value).startswith(
        f"{config}{expected}" if expected[0] == ":" else f"{config}: {expected}"
    )


def test_run_facts_are_read_once_and_a_config_without_them_is_refused_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(config_cache, "_CACHE", config_cache._Cache())
    loaded = counting_loads(monkeypatch)
    config = str(edited_tiny_config(tmp_path))
    overrides = (f"{BOTTOM_UP}.train_sample_ratio=0.25",)
    assert config_cache.run_facts(config, overrides).variant.train_sample_ratio == 0.25
    config_cache.run_facts.cache_clear()  # the in-memory copy gone: the cache's answer remains
    assert config_cache.run_facts(config, overrides) == resolve_run(config, overrides).facts
    assert loaded == [config]

    plain = tmp_path / "plain.py"
    plain.write_text("model = dataloader = optimizer = lr_multiplier = train = {}\n")  # sections, no facts
    for _ in range(2):
        with pytest.raises(RunFactsError, match=r"plain\.py: no variant, data or length"):
            config_cache.run_facts(str(plain), ())
    assert loaded == [config, str(plain)]
