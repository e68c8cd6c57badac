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
    overrides = tuple(overrides)
    cfg = copy.deepcopy(_loaded(str(config_file)))
    missing = [section for section in RUN_SECTIONS if section not in cfg]
    if missing:
        raise ConfigFileError(
            f"{config_file}: not a run config, it sets no {', '.join(missing)} (a run config sets "
            f"{', '.join(RUN_SECTIONS)}, as experiments/tiny_mimdet.py does)"
        )
    cfg = apply_checked_overrides(cfg, overrides)
    check_counts(cfg)
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
SEED_LIMIT = 2**32  # numpy's seeds are 32-bit: detectron2 seeds it with train.seed, and refuses a larger one


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
    _check_optimizer(cfg)
    for key in SEED_KEYS:
        seed = OmegaConf.select(cfg, key, default=None)
        if key == "train.seed" and isinstance(seed, int) and seed < 0:
            raise OverrideError(
                f"train.seed is {seed}: 0 or more (for a negative one detectron2 draws a seed at random, "
                "which the run's record could not repeat)"
            )
        if isinstance(seed, int) and not 0 <= seed < SEED_LIMIT:
            raise OverrideError(f"{key} is {seed}: from 0 to 2**32 - 1 = {SEED_LIMIT - 1} (a 32-bit seed)")


@functools.lru_cache(maxsize=32)
def _loaded(config_file: str) -> DictConfig:
    return load_config(config_file)


def _check_optimizer(cfg: DictConfig) -> None:
    """OverrideError unless the config's optimizer accepts its settings: it is built on one stand-in
    parameter, so that torch's own checks (betas, eps, weight decay, momentum, an unknown argument) speak
    before the run instead of in a traceback after the model is built."""
    import torch
    from detectron2.config import instantiate
    from omegaconf import OmegaConf

    section = OmegaConf.select(cfg, "optimizer")
    if section is None or "_target_" not in section:
        return
    try:
        settings = OmegaConf.to_container(section, resolve=True)
        assert isinstance(settings, dict)
        instantiate({**settings, "params": [torch.zeros(1)]})
    except (ValueError, TypeError, IndexError) as error:
        target = section._target_
        name = getattr(target, "__name__", str(target).rsplit(".", 1)[-1])
        reason = (str(error).splitlines() or [""])[0]
        raise OverrideError(f"optimizer: {name} refuses its settings: {reason}") from None
