"""The run's checkpoints: detectron2's ``DetectionCheckpointer``, safe against full disks, foreign files and
checkpoints of another model.

- Saving is atomic (serialized in memory, written to a temporary file, renamed), and so is the
  ``last_checkpoint`` tag: a full disk or a killed process leaves the previous checkpoint and tag as
  they were, never a truncated file that a resume or an evaluation would read; a full disk is the
  ``OSError`` that says so, not torch's opaque "unexpected pos".
- Reading never runs code from the file and fails in one line (``CheckpointUnreadable``: missing,
  empty, cut short, not a checkpoint: a key that is not a tensor name, an ``iteration`` that is not a
  count a record can hold).
- Loading is strict: a checkpoint that leaves model tensors at their initialisation, brings tensors
  the model does not have, or has other shapes is a ``CheckpointError`` naming the counts and a few keys,
  unless ``allow_partial`` (``train.allow_partial_init=True``) asks for detectron2's partial load; one
  with weights that are NaN or infinite (a training that diverged), or integer where the model's are
  floating point (truncated weights), is one in any case. MAE
  pre-training is loaded elsewhere (``mimdet.modeling.checkpoint``), partial by design.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer
from fvcore.common.checkpoint import _IncompatibleKeys
from torch import nn

from mimdet.modeling.checkpoint import (
    CheckpointError,
    CheckpointUnreadable,
    check_checkpoint_file,
    key_problem,
    read_torch_file,
    save_torch_file,
)
from mimdet.record.atomic import write_bytes_atomic
from mimdet.record.schema import INT64, describe_value

SHOWN_KEYS = 3  # keys named per kind of mismatch; the counts say how many there are
MAX_TAG_BYTES = 4096  # last_checkpoint holds a file name
MAX_ITERATION = INT64[1] - 1  # a run's record counts iteration + 1 iterations, an int64


class RunCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic saves, safe reads and strict loads (see the module)."""

    def __init__(
        self, model: nn.Module, save_dir: str = "", *, allow_partial: bool = False, **checkpointables: Any
    ) -> None:
        super().__init__(model, save_dir, **checkpointables)
        self.allow_partial = allow_partial

    def load(self, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """detectron2's load of a local file; a missing file or one that does not fit is one line."""
        if path:  # detectron2 asserts, in a traceback
            check_checkpoint_file(path)
        try:
            return super().load(path, *args, **kwargs)
        except CheckpointError as error:
            self._parsed_url_during_load = None  # detectron2 resets it only after a good load
            if isinstance(error, CheckpointUnreadable):
                raise
            raise CheckpointError(f"{path} {error}") from None

    def save(self, name: str, **kwargs: Any) -> None:
        """detectron2's checkpoint content, written atomically (see the module)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **kwargs}
        data.update((key, obj.state_dict()) for key, obj in self.checkpointables.items())
        basename = f"{name}.pth"
        self.logger.info("Saving checkpoint to %s", Path(self.save_dir) / basename)
        save_torch_file(data, Path(self.save_dir) / basename)
        self.tag_last_checkpoint(basename)

    def get_checkpoint_file(self) -> str:
        """The checkpoint the folder's ``last_checkpoint`` names ("" for none), read no further than a file
        name could be. detectron2 writes a file name of this folder there; a path (``../other/model.pth``,
        ``/abs/model.pth``) is ``CheckpointUnreadable``, or a resume would go on from another run's weights.
        """
        tag = Path(self.save_dir) / "last_checkpoint"
        try:
            with open(tag, "rb") as handle:
                name = handle.read(MAX_TAG_BYTES).decode("utf-8", errors="replace").strip()
        except OSError:  # deleted meantime, as detectron2 allows
            return ""
        if not name or Path(name).name != name or name in (".", ".."):
            raise CheckpointUnreadable(f"{tag} names {name!r}, not a checkpoint file of this folder")
        return os.path.join(self.save_dir, name)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_bytes_atomic(Path(self.save_dir) / "last_checkpoint", last_filename_basename.encode())

    def _torch_load(self, f: str) -> Any:
        """The file's content, which must hold a state dict (alone or as ``model``) of tensors only."""
        loaded = read_torch_file(f)
        state = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointUnreadable(f"{f}: not a model checkpoint (no state dict of tensors in it)")
        if problem := key_problem(state):
            raise CheckpointUnreadable(f"{f}: not a model checkpoint ({problem})")
        iteration = loaded.get("iteration", 0) if state is not loaded else 0
        if type(iteration) is not int or not 0 <= iteration <= MAX_ITERATION:
            raise CheckpointUnreadable(
                f"{f}: not a model checkpoint (its iteration is {describe_value(iteration)}; "
                "allowed: an integer from 0 to 2**63-2, the last iteration trained)"
            )
        return loaded

    def _load_model(self, checkpoint: Any) -> _IncompatibleKeys:
        if broken := not_finite(checkpoint["model"]):  # a diverged training's weights evaluate to no boxes
            raise CheckpointError(
                f"holds weights that are not finite numbers: {len(broken)} tensors with NaN or inf "
                f"({_first(broken)})"
            )
        if retyped := not_floating_point(checkpoint["model"], self.model.state_dict()):
            raise CheckpointError(
                f"holds {len(retyped)} tensors that are not floating point where the model's are "
                f"({_first(retyped)}): weights cast to integers lost their fractions"
            )
        incompatible = super()._load_model(checkpoint)
        problem = mismatch(incompatible)
        if problem and not self.allow_partial:
            raise CheckpointError(
                f"does not fit the model: {problem} (to load only what fits: train.allow_partial_init=True)"
            )
        return incompatible


def not_finite(state: dict[str, Any]) -> list[str]:
    """The keys of floating-point tensors holding NaN or an infinity (no model of this project has one)."""
    return [
        key
        for key, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all()
    ]


def not_floating_point(state: dict[str, Any], own: dict[str, torch.Tensor]) -> list[str]:
    """``key: dtype in the checkpoint, dtype here`` for each tensor of ``state`` that is not floating point
    where the model's tensor ``own[key]`` is: torch's copy into the model would take it without a word."""
    return [
        f"{key}: {value.dtype} in the checkpoint, {own[key].dtype} here"
        for key, value in state.items()
        if key in own and own[key].is_floating_point() and not value.is_floating_point()
    ]


def mismatch(incompatible: _IncompatibleKeys) -> str:
    """What did not fit, with counts and the first few keys; empty when everything did."""
    shapes = incompatible.incorrect_shapes
    reshaped = {key for key, _, _ in shapes}
    missing = [key for key in incompatible.missing_keys if key not in reshaped]
    parts = []
    if shapes:
        described = [
            f"{key}: {tuple(ckpt)} in the checkpoint, {tuple(own)} here" for key, ckpt, own in shapes
        ]
        parts.append(f"{len(shapes)} tensors of another shape ({_first(described)})")
    if missing:
        parts.append(f"{len(missing)} model tensors not in the checkpoint ({_first(missing)})")
    if incompatible.unexpected_keys:
        unexpected = incompatible.unexpected_keys
        parts.append(f"{len(unexpected)} checkpoint tensors the model lacks ({_first(unexpected)})")
    return ", ".join(parts)


def _first(items: list[str]) -> str:
    return "; ".join(items[:SHOWN_KEYS]) + ("; ..." if len(items) > SHOWN_KEYS else "")
