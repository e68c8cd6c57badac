"""What the sweep engine reads from config files, computed once per machine while nothing it depends on
changes, so that ``sweep plan``/``status``/``table`` need not import torch and detectron2 (~3 s).

A config file is Python: loading it imports the model code, and every fact the engine takes from it
through ``mimdet.run.resolve`` (its canonical content for run identity, whether an override fits it, the
variant, data and length of a run: ``run_facts``) or asks of the model (whether it takes a sample ratio
or a decoder count) costs that import. ``cached(kind, config_file, key, compute)`` returns
``compute()``'s JSON value and keeps it in ``$MIMDET_CACHE/sweeps/`` (default ``~/.cache/mimdet``), in
a file named by a digest of what the answers depend on: every ``.py`` file of ``experiments/``,
``mimdet/`` and ``sweeps/`` (size and modification time) and the installed torch, detectron2, timm,
omegaconf and hydra. Editing any of them starts a new file (the old ones of this checkout are removed).
A config file outside ``experiments/`` imports what the digest does not cover: its facts are kept for
the process only. Values are JSON-round-tripped on the first call too, so a cached answer is the same
as a computed one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mimdet.run.config import EXPERIMENTS, resolve_config_path
from mimdet.run.overrides import parse_override, variant_overrides
from mimdet.run.resolve import RunFacts, RunFactsError, resolve_run

from .cache_file import CacheFile, save_at_exit

T = TypeVar("T")
REPO = EXPERIMENTS.parent
LIBRARIES = ("torch", "detectron2", "timm", "omegaconf", "hydra")


class _Cache:
    """The answers of this process: this checkout's cache file, and those of configs outside experiments/,
    which are kept for the process only."""

    def __init__(self) -> None:
        checkout = hashlib.sha256(str(REPO).encode()).hexdigest()[:8]
        self.file = CacheFile(checkout, lambda: _code_digest())  # defined below
        self.local: dict[str, Any] = {}

    def save(self) -> None:
        self.file.save()


_CACHE = _Cache()
save_at_exit(_CACHE.save)


def cached(kind: str, config_file: str | Path | None, key: Any, compute: Callable[[], T]) -> T:
    """``compute()`` for ``(kind, config_file, key)``, from the cache where it has it; ``key`` is JSON.
    Without a config file, ``compute`` depends on ``key`` and this code only."""
    path, on_disk = _located(config_file, os.getcwd())
    name = f"{kind}|{path or ''}|{json.dumps(key, sort_keys=True)}"
    entries = _CACHE.file.entries if on_disk else _CACHE.local
    if name not in entries:
        entries[name] = json.loads(json.dumps(compute()))
        _CACHE.file.dirty |= on_disk
    return entries[name]  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=1024)
def _located(config_file: str | Path | None, cwd: str) -> tuple[Path | None, bool]:
    """The config file's resolved path (from ``cwd``) and whether its answers are kept on disk, found once:
    a status of 10,000 runs of one config asks 10,000 times (resolving each was 0.8 s)."""
    path = resolve_config_path(config_file).resolve() if config_file is not None else None
    return path, path is None or path.is_relative_to(EXPERIMENTS)


def parsed_override(override: str) -> tuple[str, Any]:
    """``mimdet.run.overrides.parse_override``, cached: hydra's parser takes ~5 ms a call, ~0.2 s to import.
    A bad override raises every time (errors are not kept)."""
    pair: list[Any] = cached("parse", None, override, lambda: list(parse_override(override)))
    return str(pair[0]), pair[1]


@functools.lru_cache(maxsize=65536)
def run_facts(config_file: str, overrides: tuple[str, ...]) -> RunFacts:
    """``mimdet.run.resolve``'s facts of a run. A config without them raises RunFactsError, kept too: a sweep
    of a config this project does not know is not loaded again by every command."""
    found: dict[str, Any] = cached(
        "run", config_file, list(overrides), lambda: _facts(config_file, overrides)
    )
    if "problem" in found:
        raise RunFactsError(found["problem"])
    return RunFacts.from_dict(found)


def variant_columns(config_file: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    """The run's variant and data as a record row's columns (``record_to_row``): what a row of a run without
    a record carries, and what a run's record must say. Resolved from the overrides that can change them
    alone (``variant_overrides``): the 10,000 runs of a grid over seeds are a few resolutions, not 10,000."""
    facts = run_facts(config_file, variant_overrides(overrides))
    return {
        **vars(facts.variant),  # a flat dataclass: asdict's deep copy cost 10 µs a run of a status
        "dataset_train": facts.dataset_train,
        "dataset_test": facts.dataset_test,
    }


def _facts(config_file: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    try:
        return dataclasses.asdict(resolve_run(config_file, overrides).facts)
    except RunFactsError as error:
        return {"problem": str(error)}


def _code_digest() -> str:
    """Size and modification time of every file an answer can depend on (module docstring)."""
    digest = hashlib.sha256()
    for folder in ("experiments", "mimdet", "sweeps"):
        for path in sorted((REPO / folder).rglob("*.py")):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for library in LIBRARIES:
        found = importlib.util.find_spec(library)  # where it is installed, without importing it
        if found is not None and found.origin:
            stat = os.stat(found.origin)
            digest.update(f"{found.origin}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
