"""Checked ``key=value`` overrides: unknown keys and wrong types are one-line errors."""

from __future__ import annotations

import pytest
from hydra.errors import HydraException
from hypothesis import given, settings
from hypothesis import strategies as st

from mimdet.run.config import load_config
from mimdet.run.overrides import (
    OverrideError,
    _parser,
    apply_checked_overrides,
    check_choices,
    parse_override,
    variant_overrides,
)


@pytest.fixture(scope="module")
def cfg():
    return load_config("tiny_mimdet.py")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.max_itr=5", "unknown key 'max_itr' in train (did you mean: max_iter?)"),
        ("train.max_iter=abc", "train.max_iter is an int"),
        ("train.amp.enabled=1", "train.amp.enabled is a bool"),
        ("nope.x=1", "no section nope"),
        ("train.max_iter.x=3", "train.max_iter is not a config section"),
        ("model.backbone.bottom_up.num_decoder=2", "did you mean: num_decoders"),
        ("foo", "bad override 'foo'"),
        ("x=[1,", "bad override 'x=[1,'"),
        ("~train.max_iter", "only key=value is supported"),
        (
            "--eval-only",
            "a flag among the overrides (allowed: flags before the first key=value",
        ),  # was: Hydra's
        (
            "model.backbone.bottom_up.sampling=randm",
            "'randm' is not allowed for sampling (allowed: 'random', ",
        ),
        (
            "model.backbone.bottom_up.fpn_inputs=vitt",
            "'vitt' is not allowed for fpn_inputs (allowed: 'hybrid', ",
        ),
        (
            "model.backbone.bottom_up.c5_pool=mean",
            "'mean' is not allowed for c5_pool (allowed: 'avg', 'max')",
        ),
        (
            "model.backbone.bottom_up.norm=SyncBM",
            "'SyncBM' is not allowed for norm (allowed: '', 'BN', 'SyncBN'",
        ),
        ("model.backbone.bottom_up.decoder_fill=zeros", "'zeros' is not allowed for decoder_fill (allowed: "),
    ],
)
def test_bad_overrides(cfg, override: str, message: str) -> None:
    with pytest.raises(OverrideError, match=None) as error:
        apply_checked_overrides(cfg.copy(), [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_good_overrides_apply(cfg) -> None:
    changed = apply_checked_overrides(
        cfg.copy(),
        [
            "train.max_iter=5",
            "optimizer.lr=1e-3",
            "model.backbone.bottom_up.eval_seed=3",  # a constructor default the config does not spell out
            "dataset_paths={mine:[a.json,img]}",
            "train.mae_checkpoint=''",
        ],
    )
    assert changed.train.max_iter == 5 and changed.optimizer.lr == 1e-3
    assert changed.model.backbone.bottom_up.eval_seed == 3
    assert list(changed.dataset_paths.mine) == ["a.json", "img"] and changed.train.mae_checkpoint == ""


def test_a_config_file_with_a_bad_choice_is_one_line(cfg) -> None:
    """Values written in a config file (not overrides) are checked too, with the key's full path."""
    edited = load_config("tiny_mimdet.py")
    edited.model.backbone.bottom_up.fpn_inputs = "vitt"
    with pytest.raises(OverrideError) as error:
        check_choices(edited)
    assert str(error.value) == (
        "model.backbone.bottom_up.fpn_inputs: 'vitt' is not allowed (allowed: 'hybrid', 'vit')"
    )
    check_choices(cfg)  # the shipped value passes


def test_variant_overrides_keep_what_can_change_the_model_or_the_data() -> None:
    """A record's variant and data are checked against its run's config resolved with these alone: the
    seeds, the schedule and the optimizer cannot change them, and a grid over seeds resolves once."""
    overrides = (
        "train.max_iter=300",
        "train.seed=3",
        "model.backbone.bottom_up.eval_seed=2",
        "model.backbone.bottom_up.train_sample_ratio=0.5",
        "optimizer.lr=0.001",
        "dataloader.test.dataset.names=ghost",
        "dataset_paths={ghost:[a.json,b]}",
        "modelx.y=1",
    )
    assert variant_overrides(overrides) == (
        "model.backbone.bottom_up.train_sample_ratio=0.5",
        "dataloader.test.dataset.names=ghost",
        "dataset_paths={ghost:[a.json,b]}",
    )


@settings(max_examples=300, deadline=None)
@given(
    key=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}(\.[A-Za-z0-9_]{1,6}){0,3}", fullmatch=True),
    value=st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
        st.from_regex(r"-?[0-9]{1,4}(\.[0-9]{0,3})?([eE]-?[0-9])?", fullmatch=True),
    ),
)
def test_a_number_is_read_as_hydra_reads_it(key: str, value: str) -> None:
    """``parse_override`` reads ``key=NUMBER`` itself (Hydra's parser takes ~1 ms an override, and a table
    of 10,000 records parses hundreds); what it reads must be what Hydra reads, type included."""
    override = f"{key}={value}"
    try:
        hydra = _parser().parse_override(override)
    except HydraException:
        with pytest.raises(OverrideError):
            parse_override(override)
        return
    if hydra.is_delete() or hydra.is_add() or hydra.is_force_add():
        return
    expected = (hydra.key_or_group, hydra.value())
    got = parse_override(override)
    assert got == expected and type(got[1]) is type(expected[1]), override
