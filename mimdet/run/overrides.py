"""Command-line ``key=value`` overrides, checked before they touch a config.

detectron2's ``apply_overrides`` silently adds a misspelt key (``train.max_itr=5`` beside ``max_iter``)
and accepts any type. Here every key must exist — in the config, or as a constructor argument of the
``LazyCall`` it sits under — and the value must have the type of what it replaces; a constructor
argument typed ``Literal[...]`` (the backbone's ``sampling``, ``fpn_inputs``, ...) takes only those values,
which ``check_choices`` also checks in a whole config. Errors are one line with close matches or the
allowed values.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import json
import re
import typing
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from omegaconf import DictConfig, ListConfig, OmegaConf

from mimdet.record.schema import describe_value

if TYPE_CHECKING:
    from hydra.core.override_parser.overrides_parser import OverridesParser

_ABSENT = object()

# Keys that cannot change a run's result: where it writes, how often it logs and checkpoints, data-loader
# workers; and for a training, the test-time settings (its evaluation is a run of its own). Run identity
# (``sweeps.identity``) leaves them out, and so do the tables when they tell repeats from other runs.
OPERATIONAL_KEYS = (
    "train.output_dir",
    "train.init_checkpoint",
    "train.allow_partial_init",  # only decides whether a checkpoint that does not fit is an error
    "train.log_period",
    "train.checkpointer",
    "train.final_eval",
    "train.eval_period",
    "dataloader.train.num_workers",
    "dataloader.test.num_workers",
)
TEST_TIME_KEYS = (
    "model.backbone.bottom_up.test_sample_ratio",
    "model.backbone.bottom_up.eval_seed",
    "train.eval_precise_bn_iters",
)


# Where a key can change the variant and the data a run's record names: the model and the data. Seeds, the
# schedule, the optimizer and where files go cannot, so the runs of a grid over seeds share one resolution.
VARIANT_ROOTS = ("model", "dataloader", "dataset_paths")
SEED_KEYS = ("train.seed", "model.backbone.bottom_up.eval_seed")


def variant_overrides(overrides: Iterable[str]) -> tuple[str, ...]:
    """The overrides (``key=value``) that can change a run's variant or data, in their order."""
    return tuple(override for override in overrides if _is_variant_key(override.partition("=")[0]))


@functools.lru_cache(maxsize=4096)
def _is_variant_key(key: str) -> bool:  # cached: a store's 10,000 records repeat a few dozen keys
    return is_ignored(key, VARIANT_ROOTS) and not is_ignored(key, SEED_KEYS)


def ignored_keys(stage: str) -> tuple[str, ...]:
    """The keys that cannot change the result of a run of ``stage`` ("train" or "eval")."""
    return OPERATIONAL_KEYS + (TEST_TIME_KEYS if stage == "train" else ())


def is_ignored(key: str, ignored: tuple[str, ...]) -> bool:
    """Whether ``key`` is one of ``ignored`` or lies under one (``train.checkpointer.period``)."""
    return any(key == k or key.startswith(k + ".") for k in ignored)


class OverrideError(ValueError):
    """A ``key=value`` override that names no key of the config or has the wrong type or choice; also a
    choice a config file sets that its constructor does not allow."""


def apply_checked_overrides(cfg: DictConfig, overrides: Iterable[str]) -> DictConfig:
    """Check every override, then apply them in order (detectron2's syntax and semantics). One that passes
    the checks but cannot be applied (an index past the end of a list) is an OverrideError too."""
    from detectron2.config import LazyConfig  # here: parse_override alone needs no detectron2 (~3 s)
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    for override in overrides:
        check_override(cfg, override)
    for override in overrides:
        try:
            LazyConfig.apply_overrides(cfg, [override])
        except (KeyError, IndexError, OmegaConfBaseException) as error:
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            raise OverrideError(f"bad override {override!r}: {reason}") from None
    return cfg


def check_override(cfg: DictConfig, override: str) -> None:
    """Raise OverrideError unless ``override`` names an existing key with a value of its type."""
    key, value = parse_override(override)
    current = _current_value(cfg, key, override)
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    allowed = _choices(parent).get(leaf) if isinstance(parent, DictConfig) else None
    if allowed is not None and value not in allowed:
        raise OverrideError(
            f"bad override {override!r}: {value!r} is not allowed for {leaf} (allowed: {_listed(allowed)})"
        )
    if current is _ABSENT or current is None or value is None:
        return
    if not _same_kind(current, value):
        raise OverrideError(
            f"bad override {override!r}: {key} is {_kind(current)} (now {current!r}), "
            f"got {_kind(value)} {value!r}"
        )


def _current_value(cfg: DictConfig, key: str, override: str) -> object:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=_ABSENT) if parent_key else cfg
    if not isinstance(parent, DictConfig | ListConfig):
        where = (
            f"{parent_key} is not a config section" if parent is not _ABSENT else f"no section {parent_key}"
        )
        raise OverrideError(f"bad override {override!r}: {where}")
    if isinstance(parent, ListConfig):
        return _ABSENT
    if leaf in parent:
        return OmegaConf.select(cfg, key)
    if leaf in _constructor_arguments(parent):
        return _ABSENT  # a constructor default the config does not spell out: any value its type allows
    known = sorted({str(k) for k in parent.keys()} | _constructor_arguments(parent))
    close = difflib.get_close_matches(leaf, known, n=3)
    hint = f" (did you mean: {', '.join(close)}?)" if close else f" (known: {', '.join(map(str, known))})"
    raise OverrideError(
        f"bad override {override!r}: unknown key {leaf!r} in {parent_key or 'the config'}{hint}"
    )


def check_choices(cfg: DictConfig, where: str = "") -> None:
    """Raise OverrideError unless every choice-typed constructor argument ``cfg`` sets is allowed.

    Overrides are checked one by one; this catches a misspelt choice written in a config file, before a
    run builds the model (whose refusal would come after the run started).
    """
    allowed = _choices(cfg)
    for key in cfg:
        name, value = str(key), cfg[key]
        path = f"{where}.{name}" if where else name
        if name in allowed and value not in allowed[name]:
            raise OverrideError(f"{path}: {value!r} is not allowed (allowed: {_listed(allowed[name])})")
        if isinstance(value, DictConfig):
            check_choices(value, path)


def _target(section: DictConfig) -> Callable[..., Any] | None:
    """The callable a ``LazyCall`` section instantiates, or None."""
    from detectron2.utils.registry import locate

    target = section.get("_target_") if "_target_" in section else None
    try:
        return locate(target) if isinstance(target, str) else target
    except ImportError:
        return None


def _constructor_arguments(section: DictConfig) -> set[str]:
    target = _target(section)
    if target is None:
        return set()
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _choices(section: DictConfig) -> dict[str, tuple[object, ...]]:
    """Argument name -> allowed values, for the ``Literal``-typed arguments of the section's target."""
    target = _target(section)
    return _literal_arguments(target) if target is not None else {}


@functools.cache
def _literal_arguments(target: Callable[..., Any]) -> dict[str, tuple[object, ...]]:
    try:
        parameters = inspect.signature(target, eval_str=True).parameters.values()
    except (NameError, TypeError, ValueError):  # no signature, or annotations that do not resolve
        return {}
    return {
        p.name: typing.get_args(p.annotation)
        for p in parameters
        if typing.get_origin(p.annotation) is Literal
    }


def _listed(values: tuple[object, ...]) -> str:
    return ", ".join(repr(v) for v in values)


# ``a.b_c.d=-12`` or ``=0.25``: a key and a number Hydra reads as int or float, read here as Hydra would
# (``test_overrides.py`` compares them); anything else (exponents, leading zeros, ``_``) goes to Hydra
_PLAIN_NUMBER = re.compile(
    r"([A-Za-z_]\w*(?:\.(?:[A-Za-z_]\w*|0|[1-9][0-9]*))*)=(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?)", re.ASCII
)


def parse_override(override: str) -> tuple[str, object]:
    """(key, value) with Hydra's grammar, which ``LazyConfig.apply_overrides`` applies too."""
    from hydra.errors import HydraException

    if plain := _PLAIN_NUMBER.fullmatch(override):  # most of a sweep's: Hydra's parser takes ~1 ms each
        key, number = plain.group(1, 2)
        return key, float(number) if "." in number else int(number)
    if override.startswith("-"):  # argparse leaves a flag written after the first override among them
        raise OverrideError(
            f"bad override {override!r}: a flag among the overrides (allowed: flags before the first "
            "key=value, e.g. --eval-only --config-file FILE key=value)"
        )
    try:
        parsed = _parser().parse_override(override)
    except HydraException as error:
        reason = (str(error).splitlines() or ["not key=value"])[0]
        raise OverrideError(f"bad override {override!r}: {reason}") from None
    if parsed.is_delete() or parsed.is_add() or parsed.is_force_add():
        raise OverrideError(f"bad override {override!r}: only key=value is supported")
    return parsed.key_or_group, parsed.value()


def override_string(key: str, value: Any, parse: Callable[[str], tuple[str, object]] = parse_override) -> str:
    """``key=value`` in the syntax ``LazyConfig.apply_overrides`` reads back as exactly ``value``: the
    writer beside the reader. The text is read back with ``parse`` to make sure (a caller that keeps
    parses, as the sweep engine does, passes its own); ValueError where no such text exists (e.g. a
    mapping key Hydra cannot spell). Cached: a sweep writes the same few values over and over.
    """
    fingerprint = json.dumps(value, sort_keys=True)
    text = _WRITTEN.get((key, fingerprint))
    if text is None:
        text = f"{key}={_value_text(value)}"
        parsed_key, parsed = parse(text)
        if parsed_key != key or json.dumps(parsed, sort_keys=True) != fingerprint:
            problem = describe_value(value, mapping="a mapping")
            raise ValueError(f"{problem} cannot be written as a key=value override")
        _WRITTEN[(key, fingerprint)] = text
    return text


_WRITTEN: dict[tuple[str, str], str] = {}
_UNQUOTED = re.compile(r"^[A-Za-z_/][\w./\-:@]*$")


def _value_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 0.5, 1e-05, inf, nan: all Hydra floats
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_value_text(v)}" for k, v in value.items()) + "}"
    return _string_text(str(value))


def _string_text(text: str) -> str:
    """Unquoted where Hydra reads it back as this string, else single-quoted with Hydra's escapes.

    Hydra un-escapes a backslash only before a quote or at the end of a quoted string, so only those
    are doubled.
    """
    if _UNQUOTED.match(text) and text.lower() not in ("null", "true", "false", "nan", "inf"):
        return text
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number" if isinstance(value, float) else "an int"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple | ListConfig):
        return "a list"
    return f"a {type(value).__name__}"


def _same_kind(current: object, value: object) -> bool:
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, int | float)
    if isinstance(current, int):
        return isinstance(value, int)
    if isinstance(current, list | tuple | ListConfig):
        return isinstance(value, list | tuple)
    if isinstance(current, dict | DictConfig):
        return isinstance(value, dict)
    return isinstance(value, type(current))


@functools.cache
def _parser() -> OverridesParser:
    """Hydra's parser, built on first use: importing hydra costs ~0.2 s that a cached caller never pays."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()
