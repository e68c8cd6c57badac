"""Loading an official MAE pre-training checkpoint into a MIMDet or Benchmarking backbone.

The official format is ``{"model": state_dict}`` with ``cls_token``, ``pos_embed`` (1, 197, D),
``patch_embed.proj.*``, ``blocks.N.*``, ``norm.*``, ``mask_token``, ``decoder_embed.*``,
``decoder_pos_embed``, ``decoder_blocks.0..7.*``, ``decoder_norm.*`` and ``decoder_pred.*``. Each backbone
class names, in ``MAE_KEY_MAP``, where MAE's keys go; keys with no place (the patchify stem and class
token for MIMDet, ``decoder_pred``, decoder blocks beyond the N in use) are dropped. Position tables are
resized from MAE's 14x14 grid to the backbone's (the class slot is kept).

``convert_mae_state`` is a pure function (a new dict out, its inputs untouched), so it is testable on a
synthetic state dict; ``load_mae_checkpoint`` adds file handling and a report.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mimdet.record.atomic import NOT_A_PLAIN_FILE, write_bytes_atomic
from mimdet.record.schema import describe_value

logger = logging.getLogger(__name__)

POSITION_TABLES = ("pos_embed", "decoder_pos_embed")


class CheckpointError(ValueError):
    """A checkpoint that is not an MAE checkpoint or does not fit the model; the message names the key."""


class CheckpointUnreadable(CheckpointError):
    """A checkpoint file that cannot be read at all: missing, empty, cut short or not a torch file."""


@dataclass(frozen=True)
class LoadReport:
    """What a load did: keys loaded, model keys left at their init, checkpoint keys with no place."""

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]

    def summary(self, depth: int = 2) -> str:
        """One line; key lists grouped by their first ``depth`` name parts."""
        return (
            f"loaded {len(self.loaded)} tensors; missing (left at their initialisation): "
            f"{group_keys(self.missing, depth)}; unexpected (dropped): {group_keys(self.unexpected, depth)}"
        )


KeyMap = tuple[tuple[str, str], ...]  # (source prefix, model prefix) pairs; the first match wins


def rename_key(key: str, key_map: KeyMap) -> str | None:
    """The model key for a checkpoint key under ``key_map``, or None if it has no place."""
    for source_prefix, model_prefix in key_map:
        if key == source_prefix or key.startswith(source_prefix + "."):
            return model_prefix + key[len(source_prefix) :]
    return None


def _class_rows(rows: int) -> int | None:
    """How many class rows precede a square grid of ``rows - class rows`` positions (0 or 1), if any."""
    for extra in (0, 1):
        side = math.isqrt(rows - extra)
        if side * side == rows - extra:
            return extra
    return None


def resize_position_table(table: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
    """(1, [1 +] g*g, C) -> (1, [1 +] G*G, C): bicubic on the grid part; the class row kept if the
    target has one, dropped if not.

    A table that cannot be resized (other width, not a square grid, a class row to invent) comes back
    unchanged, for the caller's shape check to report with its key.
    """
    source_cls, target_cls = _class_rows(table.shape[1]), _class_rows(target_shape[1])
    if (
        source_cls is None
        or target_cls is None
        or target_cls > source_cls
        or table.shape[-1] != target_shape[-1]
    ):
        return table
    cls_rows, grid = table[:, :target_cls], table[:, source_cls:]
    side, target_side = math.isqrt(grid.shape[1]), math.isqrt(target_shape[1] - target_cls)
    if side != target_side:
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(target_side, target_side), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, target_side * target_side, -1).to(table.dtype)
    return torch.cat([cls_rows, grid], dim=1)


def convert_state(
    source: Mapping[str, torch.Tensor],
    target_state: Mapping[str, torch.Tensor],
    key_map: KeyMap,
    resizable: tuple[str, ...] = (),
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``source`` renamed for ``target_state`` (whose shapes every tensor must have; the position tables
    named in ``resizable`` are resized to them first); also the source keys that found no place."""
    converted: dict[str, torch.Tensor] = {}
    dropped = []
    for key, value in source.items():
        new_key = rename_key(key, key_map)
        if new_key is None or new_key not in target_state:
            dropped.append(key)
            continue
        expected = target_state[new_key].shape
        if key in resizable:
            value = resize_position_table(value, expected)
        if value.shape != expected:
            raise CheckpointError(
                f"{key}: checkpoint shape {tuple(value.shape)} does not fit {new_key} {tuple(expected)}"
            )
        converted[new_key] = value.clone()
    return converted, dropped


def convert_mae_state(
    mae_state: Mapping[str, torch.Tensor], target_state: Mapping[str, torch.Tensor], key_map: KeyMap
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """MAE tensors renamed and resized for ``target_state``; also the MAE keys that found no place."""
    return convert_state(mae_state, target_state, key_map, resizable=POSITION_TABLES)


def check_checkpoint_file(path: str | Path) -> None:
    """A checkpoint is a plain file (or a link to one); else one ``CheckpointUnreadable`` line that says
    whether nothing is there or something else is (a folder, a FIFO: not "no such file")."""
    if not os.path.isfile(path):
        there = os.path.exists(path)
        problem = NOT_A_PLAIN_FILE if there else "no such checkpoint file"
        raise CheckpointUnreadable(f"{path}: {problem}")


def read_torch_file(path: str | Path) -> Any:
    """A torch checkpoint's content, loaded without running code from it (``weights_only``).

    Problems are one ``CheckpointUnreadable`` line naming the file. torch's own messages are not passed
    on: for a file it cannot unpickle safely, torch suggests ``weights_only=False``, which would execute
    whatever the file contains.
    """
    path = Path(path)
    check_checkpoint_file(path)
    if path.stat().st_size == 0:
        raise CheckpointUnreadable(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        raise CheckpointUnreadable(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: cut short, corrupt, "
            "or not a file of torch.save)"
        ) from None


def key_problem(state: Mapping[object, Any]) -> str | None:
    """What is wrong with a state dict's keys, or None. torch saves and loads any key, but a key that is
    not a tensor's name (an int) breaks every key match (detectron2's, the key maps) in a traceback."""
    odd = [key for key in state if not isinstance(key, str)]
    if not odd:
        return None
    return f"{len(odd)} keys of its state dict are not tensor names (first: {describe_value(odd[0])})"


def save_torch_file(data: Any, path: str | Path) -> None:
    """``torch.save`` atomically: serialized in memory, written and renamed (``mimdet.record.atomic``), so
    that a full disk fails with the ``OSError`` that says so and leaves no half-written file."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    write_bytes_atomic(path, buffer.getbuffer())


def read_state(path: str | Path, kind: str, *, bare: bool = False) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of a checkpoint (``bare``: or the file's own state dict), or a
    CheckpointError naming the file and, as ``kind``, what it should have been."""
    path = Path(path)
    checkpoint = read_torch_file(path)
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if state is None and bare:
        state = checkpoint
    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(v, torch.Tensor) for v in state.values())
    ):
        found = (
            sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        )
        expected = "a dict with a 'model' state dict" + (" or a state dict" if bare else "")
        raise CheckpointError(f"{path}: not {kind}: expected {expected}, got {found}")
    if problem := key_problem(state):
        raise CheckpointError(f"{path}: not {kind}: {problem}")
    return state


def read_mae_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The ``model`` state dict of an official MAE checkpoint, or a CheckpointError naming the file."""
    return read_state(path, "an MAE checkpoint")


def load_mae_checkpoint(backbone: nn.Module, path: str | Path) -> LoadReport:
    """Load MAE weights into ``backbone`` (one with ``MAE_KEY_MAP``: its class's, or its own where a
    setting leaves a tensor at its initialisation) and log what happened."""
    key_map = getattr(backbone, "MAE_KEY_MAP", None)
    if key_map is None:
        raise CheckpointError(
            f"{type(backbone).__name__} does not say how to load MAE weights (no MAE_KEY_MAP)"
        )
    target = backbone.state_dict()
    state = read_mae_state(path)
    try:
        converted, dropped = convert_mae_state(state, target, key_map)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    backbone.load_state_dict(converted, strict=False)
    report = LoadReport(sorted(converted), sorted(set(target) - set(converted)), sorted(dropped))
    logger.info("MAE checkpoint %s: %s", path, report.summary())
    return report


def group_keys(keys: list[str], depth: int = 2, limit: int | None = None) -> str:
    """Keys summarised by their first ``depth`` name parts, e.g. 'stem.stages (16), decoder.blocks.5 (12)';
    past ``limit`` groups, a count of the rest."""
    if not keys:
        return "none"
    counts: dict[str, int] = {}
    for key in keys:
        head = ".".join(key.split(".")[:depth])
        counts[head] = counts.get(head, 0) + 1
    groups = [f"{head} ({n})" if n > 1 else head for head, n in counts.items()]
    rest = len(groups) - limit if limit is not None and len(groups) > limit else 0
    return ", ".join(groups[: len(groups) - rest]) + (f" and {rest} more groups" if rest else "")
