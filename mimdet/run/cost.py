"""What a run costs, measured inside it: time per iteration, wall time, memory at batch 1, inference speed.

Peak memory of one training iteration at batch size 1 (the paper's "mem" columns): on CUDA the
allocator's maximum (``torch.cuda.max_memory_allocated``, weights included); on the CPU the rise of the
process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``) over its size
before the iteration. The record says which through ``peak_mem_kind``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from detectron2.engine import HookBase
from torch import nn

from mimdet.record.schema import PeakMemKind

CUDA_KIND: PeakMemKind = "cuda_max_allocated"
CPU_KIND: PeakMemKind = "cpu_peak_rss_delta"
WARMUP_ITERATIONS = 5  # left out of the seconds/iteration average


@dataclass(frozen=True)
class PeakMemory:
    bytes: int
    kind: PeakMemKind


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def peak_rss_rise(step: Callable[[], object]) -> int:
    """How far this process's peak resident set rises above its size before ``step`` (Linux only:
    OSError elsewhere)."""
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = _status_bytes("VmRSS")
    step()
    return max(0, _status_bytes("VmHWM") - before)


def measure_peak_memory(
    model: nn.Module, inputs: list[dict], device: str, amp: bool = False
) -> PeakMemory | None:
    """Peak memory of one forward + backward on ``inputs`` (gradients cleared, BN statistics restored)."""
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    on_cuda = device.startswith("cuda") and torch.cuda.is_available()

    def step() -> None:
        with torch.autocast("cuda", enabled=amp and on_cuda):
            losses = model(inputs)
        sum(losses.values()).backward()

    try:
        if on_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            step()
            torch.cuda.synchronize()
            peak = PeakMemory(torch.cuda.max_memory_allocated(), CUDA_KIND)
        else:
            peak = PeakMemory(peak_rss_rise(step), CPU_KIND)
    except OSError:
        return None  # no /proc (not Linux): the record says null rather than a guess
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(buffers[name])
    return peak


@dataclass(frozen=True)
class ShapeSplit:
    repeated_shape_s: float | None
    new_shape_s: float | None
    shapes: int


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class CostHook(HookBase):
    """Times training iterations and measures batch-1 memory before the first one.

    Its state (seconds trained so far) is saved in the trainer's checkpoints, so a resumed run reports
    the time of all its segments.
    """

    def __init__(self, device: str, amp: bool = False) -> None:
        self.device = device
        self.amp = amp
        self.peak_memory: PeakMemory | None = None
        self.train_seconds = 0.0
        self._step_times: list[float] = []
        self._step_start = 0.0
        self._shape_hook: torch.utils.hooks.RemovableHandle | None = None
        self._shapes: set[tuple[int, ...]] = set()
        self._batch_shape: tuple[int, ...] = ()
        self._new_shape_times: list[float] = []
        self._repeated_shape_times: list[float] = []

    def before_train(self) -> None:
        batch = next(self.trainer._data_loader_iter)
        self.peak_memory = measure_peak_memory(self.trainer.model, batch[:1], self.device, self.amp)
        model = getattr(self.trainer.model, "module", self.trainer.model)  # under DDP, the model inside
        self._shape_hook = model.backbone.register_forward_hook(self._note_shape)

    def _note_shape(self, _module: nn.Module, _args: object, features: dict[str, torch.Tensor]) -> None:
        # the finest feature map: the shape every layer after the padding works at (a canvas included)
        self._batch_shape = tuple(next(iter(features.values())).shape)

    def before_step(self) -> None:
        self._step_start = time.perf_counter()

    def after_step(self) -> None:
        elapsed = time.perf_counter() - self._step_start
        self.train_seconds += elapsed
        self._step_times.append(elapsed)
        new = self._batch_shape not in self._shapes
        self._shapes.add(self._batch_shape)
        if len(self._step_times) > WARMUP_ITERATIONS:
            (self._new_shape_times if new else self._repeated_shape_times).append(elapsed)

    def after_train(self) -> None:
        if self._shape_hook is not None:
            self._shape_hook.remove()

    @property
    def seconds_per_iteration(self) -> float | None:
        steady = self._step_times[WARMUP_ITERATIONS:] or self._step_times
        return sum(steady) / len(steady) if steady else None

    @property
    def shape_split(self) -> ShapeSplit:
        """Median seconds of steps on a repeated and on a new batch shape, and the shapes met."""
        return ShapeSplit(
            _median(self._repeated_shape_times), _median(self._new_shape_times), len(self._shapes)
        )

    def state_dict(self) -> dict[str, float]:
        return {"train_seconds": self.train_seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.train_seconds = float(state.get("train_seconds", 0.0))


class TimedModel(nn.Module):
    """Wraps a model for evaluation and counts images and pure forward seconds (CUDA synchronised)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.images = 0
        self.seconds = 0.0

    def forward(self, inputs: list[dict]) -> list[dict]:
        cuda = next(self.model.parameters()).is_cuda
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        outputs = self.model(inputs)
        if cuda:
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - start
        self.images += len(inputs)
        return outputs

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds else None
