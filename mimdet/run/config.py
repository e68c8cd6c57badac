"""Loading experiment configs (detectron2 LazyConfig files) and building their models.

Configs live in the repository's ``experiments/`` folder; a path may be given relative to it or to the
working directory. A config file that does not load (a syntax error, a name error while it runs) is one
``ConfigFileError`` line naming the file and the line, not detectron2's double traceback; so is a
misspelt choice it sets (``sampling = "randm"``), before any model is built.

torch, detectron2 (~3 s) and omegaconf are imported by the functions that need them, so that what reads
only ``EXPERIMENTS`` or config paths (the sweep engine's cached commands) does without them.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from mimdet.record.atomic import NOT_A_PLAIN_FILE

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import nn

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


class ConfigFileError(ValueError):
    """A config file that does not load, as one line: ``FILE:LINE: problem``."""


class ModelConfigError(ValueError):
    """Settings the model refuses: its constructor's own one-line ``ValueError``, said as such."""


def first_config_file(name: str | Path, folders: Iterable[Path]) -> Path | None:
    """The first ``folder / name`` there is, if it is a file; None where there is none; ``ConfigFileError``
    where it is a FIFO, a folder or a device (a FIFO would have the load wait for a writer, forever)."""
    for folder in folders:
        path = folder / name
        if path.is_file():
            return path
        if path.exists():
            raise ConfigFileError(f"{path}: {NOT_A_PLAIN_FILE}")
    return None


def resolve_config_path(config_file: str | Path) -> Path:
    """The config file as given if it exists, else the one of that name under ``experiments/``."""
    path = first_config_file(config_file, (Path(), EXPERIMENTS))
    if path is None:
        raise FileNotFoundError(f"config file not found: {config_file} (looked here and in {EXPERIMENTS})")
    return path


def load_config(config_file: str | Path) -> DictConfig:
    """A config file as a LazyConfig, its choices checked; overrides are ``mimdet.run.resolve``'s job."""
    from detectron2.config import LazyConfig
    from omegaconf import DictConfig, ListConfig

    import mimdet.run.schedule  # noqa: F401  (registers the ${mimdet.iters:...} resolver the configs use)
    from mimdet.run.overrides import OverrideError, check_choices

    path = resolve_config_path(config_file)
    if path.suffix not in (".py", ".yaml", ".yml"):  # LazyConfig would name its own line as the file's
        raise ConfigFileError(f"{config_file}: not a config file (allowed: Python .py, YAML .yaml or .yml)")
    try:
        cfg = LazyConfig.load(str(path))
    except Exception as error:  # noqa: BLE001 — whatever a config file's code raises is its problem to name
        raise ConfigFileError(_load_problem(path, error)) from None
    if not isinstance(cfg, DictConfig) or cfg._is_none():  # a YAML file of a list (a ListConfig) or nothing
        shown = "a list" if isinstance(cfg, ListConfig) else "empty"
        raise ConfigFileError(
            f"{config_file}: not a config: its top level is {shown} (allowed: a mapping of sections, "
            "model: ..., train: ..., as a YAML file; or a Python file, as experiments/tiny_mimdet.py)"
        )
    try:
        check_choices(cfg)
    except OverrideError as error:
        raise ConfigFileError(f"{config_file}: {error}") from None
    return cfg


def _load_problem(path: Path, error: Exception) -> str:
    """``FILE:LINE: problem`` for a config that failed to load, at the deepest line of a config file.

    A YAML file's error is at the line its parser names. detectron2 wraps a syntax error in a second one
    that says only "has syntax error"; the real one is its cause. Other errors of a Python config point at
    the innermost frame in the config's folder (a config imports its siblings), else at the config file.
    """
    import yaml

    cause = error.__cause__ if isinstance(error.__cause__, SyntaxError) else error
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        problem = ", ".join(part for part in (error.context, error.problem) if part)
        return " ".join(f"{path}:{error.problem_mark.line + 1}: YAML syntax error: {problem}".split())
    if isinstance(cause, SyntaxError):
        file = cause.filename if cause.filename and Path(cause.filename).is_file() else path  # "<unknown>"
        where = f"{file}:{cause.lineno or 1}"
        return " ".join(f"{where}: syntax error: {cause.msg}".split())
    folder = path.resolve().parent
    frames = [  # a YAML file runs no code: frames in its folder are this project's (a YAML in the checkout)
        f
        for f in traceback.extract_tb(error.__traceback__)
        if path.suffix == ".py" and Path(f.filename).is_relative_to(folder)
    ]
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(path)
    return " ".join(f"{where}: {type(error).__name__}: {error}".split())


def build_model(cfg: DictConfig, device: str | None = None) -> nn.Module:
    """Instantiate ``cfg.model``; ``device="meta"`` builds it without memory (for counting).

    The model's modules check their arguments with ``ValueError`` (window attention with sampling, a
    width the ConvStem cannot split, ...): that is the config's problem, a ``ModelConfigError``.
    """
    import torch
    from detectron2.config import instantiate

    with torch.device(device) if device else nullcontext():
        try:
            return instantiate(cfg.model)
        except ValueError as error:
            raise ModelConfigError(f"the model refuses its settings: {error}") from None
