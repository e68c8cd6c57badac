"""Run identity: a hash of what determines a run's result, stable across machines and Python versions.

``run_id = sha256(base config, effective overrides, stage, parent)``, where the base config is the
config file's content (``_target_`` callables as dotted names, interpolations unresolved) and the
effective overrides are the ``key=value`` pairs that change it, values parsed with detectron2/Hydra's
grammar and written as canonical JSON. An override that restates the base value changes nothing, so a
cell spelled ``num_decoders=4`` in one table and left at the default in another is the same run.

Keys that cannot change a result are left out: where the run writes, how often it logs and checkpoints,
data-loader workers; and for a training, the test-time settings (its evaluation is a run of its own).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from mimdet.run.overrides import ignored_keys, is_ignored
from mimdet.run.resolve import resolve_run

from .config_cache import cached, parsed_override

ID_LENGTH = 16


def canonical(value: Any) -> Any:
    """JSON-ready, order-free form: sorted dicts, lists for tuples, floats to 12 significant digits."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else repr(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return canonical(dataclasses.asdict(value))
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


@lru_cache(maxsize=64)
def base_config(config_file: str) -> dict[str, Any]:
    """The config file's content in canonical form (loaded once per machine: ``sweeps.config_cache``)."""
    return cached("content", config_file, None, lambda: _content(config_file))


def _content(config_file: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg = resolve_run(config_file).cfg
    return canonical(OmegaConf.to_container(cfg, resolve=False))  # type: ignore[no-any-return]


def _lookup(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


_MISSING = object()


@lru_cache(maxsize=4096)
def _parsed(override: str) -> tuple[str, Any]:
    return parsed_override(override)


def effective_overrides(config_file: str, overrides: Iterable[str], stage: str) -> list[tuple[str, Any]]:
    """The overrides that change this stage's result, as sorted (key, canonical value) pairs."""
    pairs: dict[str, Any] = {}
    for override in overrides:
        effect = _effect(config_file, override, stage)
        if effect is None:
            continue
        key, value, changes = effect
        if changes:
            pairs[key] = value
        else:
            pairs.pop(key, None)
    return sorted(pairs.items())


@lru_cache(maxsize=65536)
def _effect(config_file: str, override: str, stage: str) -> tuple[str, Any, bool] | None:
    """(key, canonical value, whether it differs from the base config) of one override, None if this
    stage ignores its key; once per distinct override (a 10,000-run sweep repeats a few dozen)."""
    key, value = _parsed(override)
    if is_ignored(key, ignored_keys(stage)):
        return None
    current = _lookup(base_config(config_file), key)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    value = canonical(value)
    return key, value, value != current


def _base_without(config_file: str, ignored: tuple[str, ...]) -> Any:
    def strip(node: Any, prefix: str) -> Any:
        if not isinstance(node, dict):
            return node
        return {
            k: strip(v, f"{prefix}{k}.") for k, v in node.items() if not is_ignored(f"{prefix}{k}", ignored)
        }

    return strip(base_config(config_file), "")


@lru_cache(maxsize=128)
def _base_digest(config_file: str, stage: str) -> str:
    text = json.dumps(_base_without(config_file, ignored_keys(stage)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_id(config_file: str, overrides: Iterable[str], stage: str, parent: str | None = None) -> str:
    """The run's identity (hex, ``ID_LENGTH`` characters)."""
    payload = {
        "base": _base_digest(config_file, stage),
        "overrides": effective_overrides(config_file, overrides, stage),
        "stage": stage,
        "parent": parent,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]
