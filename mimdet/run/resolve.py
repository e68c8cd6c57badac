"""A run's config: its config file with its ``key=value`` overrides checked and applied, in one place.

``mimdet.train`` builds its run from ``resolve_run(...).cfg``; the sweep engine checks a spec's config
files and overrides with it and reads from it what it plans with: a config's content (run identity) and
a run's ``RunFacts`` (variant, data, length: tables and the cost estimate). Overrides are checked as
``mimdet.run.overrides`` says (an unknown key or a wrong type is an ``OverrideError``).

Each config file is loaded once per process and every call gets its own copy of it, which a run may
edit (``mimdet.train`` sets its output folder). The sweep engine keeps the facts per machine
(``sweeps.config_cache``). torch and detectron2 are imported when a config file is first loaded, not
by importing this module: the engine's cached commands import it without them.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mimdet.record.schema import Variant
from mimdet.run.arg_types import SEED_LIMIT
from mimdet.run.config import ConfigFileError, load_config
from mimdet.run.overrides import SEED_KEYS, OverrideError, apply_checked_overrides

if TYPE_CHECKING:
    from omegaconf import DictConfig


RUN_SECTIONS = ("model", "dataloader", "optimizer", "lr_multiplier", "train")  # what a run is built from


class RunFactsError(ValueError):
    """A config this project cannot read a run's variant, data or length from, as one line."""


@dataclass(frozen=True)
class RunFacts:
    """What the sweep engine reads from a run's config, as plain data it can keep on disk."""

    variant: Variant
    dataset_train: str
    dataset_test: str
    iterations: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunFacts:
        """The inverse of ``dataclasses.asdict``."""
        return cls(**{**data, "variant": Variant(**data["variant"])})


@dataclass(frozen=True, eq=False)
class ResolvedRun:
    """A config file with its overrides applied; ``cfg`` is this call's own copy."""

    config_file: str
    overrides: tuple[str, ...]
    cfg: DictConfig = field(repr=False)

    @functools.cached_property
    def facts(self) -> RunFacts:
        """The run's variant, data and length; RunFactsError for a config without them."""
        from omegaconf.errors import OmegaConfBaseException

        from mimdet.record.from_run import variant_of  # imports torch: a config is loaded by now anyway

        cfg = self.cfg
        try:
            return RunFacts(
                variant=variant_of(cfg),
                dataset_train=str(cfg.dataloader.train.dataset.names),
                dataset_test=str(cfg.dataloader.test.dataset.names),
                iterations=int(cfg.train.max_iter),
            )
        except (KeyError, TypeError, ValueError, AttributeError, OmegaConfBaseException) as error:
            reason = (str(error).splitlines() or [""])[0]
            raise RunFactsError(
                f"{self.config_file}: no variant, data or length to read ({type(error).__name__}: {reason})"
            ) from None


def resolve_run(config_file: str | Path, overrides: Iterable[str] = ()) -> ResolvedRun:
    """The config file (loaded once per process) with ``overrides`` checked and applied, as a copy.

    Raises FileNotFoundError, ``ConfigFileError`` (a file that does not load, or is not a run's config: a
    sweep spec, a helper module) or ``OverrideError`` (also for a run of no iterations).
    """
    from omegaconf import DictConfig

    overrides = tuple(overrides)
    cfg = copy.deepcopy(_loaded(str(config_file)))
    missing = [section for section in RUN_SECTIONS if section not in cfg]
    if missing:
        raise ConfigFileError(
            f"{config_file}: not a run config, it sets no {', '.join(missing)} (a run config sets "
            f"{', '.join(RUN_SECTIONS)}, as experiments/tiny_mimdet.py does)"
        )
    scalar = next((section for section in RUN_SECTIONS if not isinstance(cfg[section], DictConfig)), None)
    if scalar is not None:  # a YAML file's ``model: 5``: every check and the run read a section as a mapping
        raise ConfigFileError(
            f"{config_file}: not a run config: its {scalar} is {cfg[scalar]!r}, not a section (a run "
            f"config's {', '.join(RUN_SECTIONS)} are mappings, as experiments/tiny_mimdet.py's are)"
        )
    cfg = apply_checked_overrides(cfg, overrides)
    check_counts(cfg)
    check_settings(cfg)
    return ResolvedRun(str(config_file), overrides, cfg)


# Settings a run counts with, the least each may be, and what it counts: detectron2 takes one below it and
# fails at the first iteration that uses it (a ZeroDivisionError, an assertion), or torch's DataLoader when
# it is built, in a traceback. None (``max_to_keep: null``, keep them all) is left alone.
COUNTS = {
    "train.log_period": (1, "iterations between log lines"),
    "train.checkpointer.period": (1, "iterations between checkpoints"),
    "train.checkpointer.max_to_keep": (1, "checkpoints kept; null keeps them all"),
    "dataloader.train.total_batch_size": (1, "images per step"),
    "dataloader.train.num_workers": (0, "data-loader processes; 0 reads in the run's own"),
    "dataloader.test.num_workers": (0, "data-loader processes; 0 reads in the run's own"),
    "train.eval_precise_bn_iters": (0, "training batches BatchNorm is re-estimated on; 0: off"),
}
# Beyond any run (2**31 iterations of 0.1 s take 7 years): detectron2's time estimate, a timedelta,
# overflows on an absurd count, after the run's first checkpoints were written
MAX_ITERATIONS = 2**31 - 1


def check_counts(cfg: DictConfig) -> None:
    """OverrideError (one line) unless the run trains from 1 to ``MAX_ITERATIONS`` iterations
    (``train.max_iter`` as set, or as derived from epochs and batch size: ``mimdet.run.schedule`` refuses
    ones that are not positive), its counts (``COUNTS``) are at least their least, its learning rate is a
    finite number of 0 or more, its optimizer takes its settings and its seeds (``SEED_KEYS``) are from 0 to
    ``SEED_LIMIT`` - 1.

    detectron2 trains no step for ``max_iter <= 0`` and the run would be recorded as completed; the others
    failed in a traceback once the run had started (torch's "Invalid learning rate: nan", a training that
    diverged at once for ``inf``, torch's "Invalid beta parameter", numpy's refusal of a seed); detectron2
    draws a random seed for a negative one, which the run's record could not repeat.
    """
    import torch
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationResolutionError

    try:
        iterations = OmegaConf.select(cfg, "train.max_iter")
    except InterpolationResolutionError as error:  # the resolver's ValueError: epochs or batch size
        reason = str(error).splitlines()[0].removeprefix("ValueError raised while resolving interpolation: ")
        raise OverrideError(f"train.max_iter: {reason}") from None
    if isinstance(iterations, int) and iterations < 1:
        raise OverrideError(f"train.max_iter is {iterations}: a run trains at least 1 iteration")
    if isinstance(iterations, int) and iterations > MAX_ITERATIONS:
        raise OverrideError(
            f"train.max_iter is {iterations}: at most 2**31 - 1 = {MAX_ITERATIONS} (more than any run "
            "trains: 2**31 iterations of 0.1 s take 7 years; detectron2's time estimate overflows on more)"
        )
    for key, (least, meaning) in COUNTS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if isinstance(value, int) and value < least:
            raise OverrideError(f"{key} is {value}: {least} or more ({meaning})")
    lr = OmegaConf.select(cfg, "optimizer.lr", default=0.0)
    if isinstance(lr, int | float) and not 0 <= lr < math.inf:  # NaN fails both
        raise OverrideError(f"optimizer.lr is {lr}: a finite number of 0 or more")
    _check_builds(cfg, "optimizer", params=[torch.zeros(1)])  # a stand-in parameter
    for key in SEED_KEYS:
        seed = OmegaConf.select(cfg, key, default=None)
        if key == "train.seed" and isinstance(seed, int) and seed < 0:
            raise OverrideError(
                f"train.seed is {seed}: 0 or more (for a negative one detectron2 draws a seed at random, "
                "which the run's record could not repeat)"
            )
        if isinstance(seed, int) and not 0 <= seed < SEED_LIMIT:
            raise OverrideError(f"{key} is {seed}: from 0 to 2**32 - 1 = {SEED_LIMIT - 1} (a 32-bit seed)")


def check_settings(cfg: DictConfig) -> None:
    """OverrideError (one line) unless every number of the run's sections is finite, its warm-up is a
    fraction of the training, its learning-rate steps fall in order within its epochs (and its schedule
    takes them), its images are read in a format detectron2 makes and each of its ``dataset_paths`` is a
    pair of paths.

    Before, a NaN trained as if it were 0 (``drop_path_rate``), predicted nothing (``nms_thresh``) or failed
    deep in a training; a warm-up of NaN or 2.0 and steps out of order trained on a schedule no one asked
    for or failed in fvcore's words; an unknown image format failed in each data-loader worker, PIL's
    "image has wrong mode"; a dataset path that was no pair, ``register_datasets``' "too many values to
    unpack".
    """
    from omegaconf import OmegaConf

    for section in RUN_SECTIONS:
        for key, value in _leaves(OmegaConf.to_container(cfg[section], resolve=True), section):
            if isinstance(value, float) and not math.isfinite(value):
                raise OverrideError(f"{key} is {value}: a finite number (a setting is no NaN or infinity)")
    warmup = OmegaConf.select(cfg, "lr_multiplier.warmup_length", default=None)
    if isinstance(warmup, int | float) and not 0 <= warmup <= 1:
        raise OverrideError(
            f"lr_multiplier.warmup_length is {warmup}: a fraction from 0 to 1 (the share of the training "
            "its warm-up takes)"
        )
    _check_steps(cfg)
    _check_builds(cfg, "lr_multiplier")
    for split in ("train", "test"):
        _check_image_format(OmegaConf.select(cfg, f"dataloader.{split}.mapper.image_format"), split)
    _check_dataset_paths(OmegaConf.select(cfg, "dataset_paths", default=None))


def _leaves(node: Any, key: str) -> Iterable[tuple[str, Any]]:
    """The ``(key.path, value)`` of every value in a config's plain container, lists' items by index."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _leaves(value, f"{key}.{name}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from _leaves(value, f"{key}.{index}")
    else:
        yield key, node


def _check_steps(cfg: DictConfig) -> None:
    """``train.lr_step_epochs``: the epochs at which the learning rate steps down, which the schedule
    (``lr_multiplier``) reads as fractions of ``train.epochs``: increasing, each above 0 and below it."""
    from omegaconf import ListConfig, OmegaConf

    steps = OmegaConf.select(cfg, "train.lr_step_epochs", default=None)
    epochs = OmegaConf.select(cfg, "train.epochs", default=None)
    if not isinstance(steps, ListConfig) or not isinstance(epochs, int | float):
        return
    values = list(steps)
    bounds = [0, *values, epochs]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    if not numbers or any(low >= high for low, high in zip(bounds, bounds[1:], strict=False)):
        raise OverrideError(
            f"train.lr_step_epochs is {values}: epochs in increasing order, each above 0 and below "
            f"train.epochs ({epochs})"
        )


def _check_image_format(image_format: Any, split: str) -> None:
    """A format detectron2's ``read_image`` makes (a PIL mode, BGR or YUV-BT.601): tried on a stand-in."""
    from detectron2.data.detection_utils import convert_PIL_to_numpy
    from PIL import Image

    if not isinstance(image_format, str):
        return
    try:
        convert_PIL_to_numpy(Image.new("RGB", (1, 1)), image_format)
    except ValueError:
        raise OverrideError(
            f"dataloader.{split}.mapper.image_format is {image_format!r}: a format detectron2 reads images "
            "in (allowed: RGB, BGR, L, YUV-BT.601 or another PIL image mode)"
        ) from None


def _check_dataset_paths(paths: Any) -> None:
    """Each of ``dataset_paths`` a pair ``[instances.json, image folder]``, as ``register_datasets`` reads."""
    from omegaconf import DictConfig, ListConfig

    example = "e.g. dataset_paths={mine_train:[/data/a.json,/data/img]}"
    if paths is None:
        return
    if not isinstance(paths, DictConfig):
        raise OverrideError(f"dataset_paths is {paths!r}: a mapping of dataset names to pairs ({example})")
    for name, pair in paths.items():
        if not (isinstance(pair, ListConfig) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            shown = list(pair) if isinstance(pair, ListConfig) else pair
            raise OverrideError(
                f"dataset_paths.{name!s} is {shown!r}: a pair [instances.json, image folder] ({example})"
            )


@functools.lru_cache(maxsize=32)
def _loaded(config_file: str) -> DictConfig:
    return load_config(config_file)


def _check_builds(cfg: DictConfig, key: str, **stand_ins: Any) -> None:
    """OverrideError unless the config's section ``key`` accepts its settings: it is built, with
    ``stand_ins`` for what the run passes it (an optimizer's parameters), so that its own checks (torch's of
    betas, eps, weight decay, an unknown argument; fvcore's of a schedule's milestones) speak before the run
    instead of in a traceback after the model is built."""
    from detectron2.config import instantiate
    from omegaconf import OmegaConf

    section = OmegaConf.select(cfg, key)
    if section is None or "_target_" not in section:
        return
    try:
        settings = OmegaConf.to_container(section, resolve=True)
        assert isinstance(settings, dict)
        instantiate({**settings, **stand_ins})
    except (ValueError, TypeError, IndexError) as error:
        target = section._target_
        name = getattr(target, "__name__", str(target).rsplit(".", 1)[-1])
        reason = (str(error).splitlines() or [""])[0]
        raise OverrideError(f"{key}: {name} refuses its settings: {reason}") from None
