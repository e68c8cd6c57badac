"""Loading experiment configs (detectron2 LazyConfig files) and building their models.

Configs live in the repository's ``experiments/`` folder; a path may be given relative to it or to the
working directory.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch, detectron2 (~3 s) and omegaconf are imported by the functions that need them,
    # so that what reads only EXPERIMENTS or config paths (the sweep engine's cached commands) does without
    from omegaconf import DictConfig
    from torch import nn

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def resolve_config_path(config_file: str | Path) -> Path:
    """The config file as given if it exists, else the one of that name under ``experiments/``."""
    path = Path(config_file)
    if path.is_file():
        return path
    if (EXPERIMENTS / path).is_file():
        return EXPERIMENTS / path
    raise FileNotFoundError(f"config file not found: {config_file} (looked here and in {EXPERIMENTS})")


def load_config(config_file: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """A LazyConfig with ``key=value`` overrides applied (detectron2's syntax)."""
    from detectron2.config import LazyConfig

    import mimdet.schedule  # noqa: F401  (registers the ${mimdet.iters:...} resolver the configs use)

    cfg = LazyConfig.load(str(resolve_config_path(config_file)))
    return LazyConfig.apply_overrides(cfg, list(overrides))


def build_model(cfg: DictConfig, device: str | None = None) -> nn.Module:
    """Instantiate ``cfg.model``; ``device="meta"`` builds it without memory (for counting)."""
    import torch
    from detectron2.config import instantiate

    with torch.device(device) if device else nullcontext():
        return instantiate(cfg.model)
