"""The run's checkpoints: detectron2's ``DetectionCheckpointer``, safe against full disks and foreign files.

- Saving is atomic (serialized in memory, written to a temporary file, renamed), and so is the
  ``last_checkpoint`` tag: a full disk or a killed process leaves the previous checkpoint and tag as
  they were, never a truncated file that a resume or an evaluation would read; a full disk is the
  ``OSError`` that says so, not torch's opaque "unexpected pos".
- Reading never runs code from the file and fails in one line (``CheckpointUnreadable``: missing,
  empty, cut short, not a checkpoint).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from detectron2.checkpoint import DetectionCheckpointer

from mimdet.atomic import write_bytes_atomic
from mimdet.modeling.checkpoint import CheckpointUnreadable, read_torch_file


class RunCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic saves and safe reads (see the module)."""

    def load(self, path: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """detectron2's load of a local file; a missing or unreadable file is one line."""
        if path and not os.path.isfile(path):  # detectron2 asserts, in a traceback
            raise CheckpointUnreadable(f"{path}: no such checkpoint file")
        try:
            return super().load(path, *args, **kwargs)
        except CheckpointUnreadable:
            self._parsed_url_during_load = None  # detectron2 resets it only after a good load
            raise

    def save(self, name: str, **kwargs: Any) -> None:
        """detectron2's checkpoint content, written atomically (see the module)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **kwargs}
        data.update((key, obj.state_dict()) for key, obj in self.checkpointables.items())
        basename = f"{name}.pth"
        self.logger.info("Saving checkpoint to %s", Path(self.save_dir) / basename)
        buffer = io.BytesIO()
        torch.save(data, buffer)
        write_bytes_atomic(Path(self.save_dir) / basename, buffer.getbuffer())
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_bytes_atomic(Path(self.save_dir) / "last_checkpoint", last_filename_basename.encode())

    def _torch_load(self, f: str) -> Any:
        """The file's content, which must hold a state dict (alone or as ``model``) of tensors only."""
        loaded = read_torch_file(f)
        state = loaded.get("model", loaded) if isinstance(loaded, dict) else loaded
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise CheckpointUnreadable(f"{f}: not a model checkpoint (no state dict of tensors in it)")
        return loaded
