"""Count, on the CPU, the operations that would make the host wait for a GPU, and say where each came from.

A training step is host-bound when the host launches kernels no faster than the GPU runs them; every
operation that needs a value back on the host (``.item()``, ``if tensor:``, a boolean-mask index, an
output whose size depends on the data) also drains the GPU's queue (``cudaStreamSynchronize``), so the
host stops running ahead. These operations dispatch to recognisable aten ops on every device, so a CPU
run finds them: ``HostSyncCounter`` counts, during a block, every aten op dispatched (roughly what the
host must launch) and each one that would synchronise, with the file:line that issued it.

The counts assume every tensor would live on the GPU: a tensor the code keeps on the CPU on purpose is
counted too. Copies between devices (``.cpu()``, ``.to("cuda")`` without ``non_blocking``) synchronise
as well, but on the CPU there is nothing to copy: they are counted when the block's tensors live on
another device, a GPU or the meta device standing in for one. ``Tensor.tolist`` dispatches no aten op on
a CPU tensor, so the counter wraps it (for every thread) while it is active.
"""

from __future__ import annotations

import functools
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

PROJECT_ROOT = Path(__file__).absolute().parents[2]
_TORCH_ROOT = os.path.join(os.path.dirname(torch.__file__), "")  # with the separator: not torchvision
_THIS_FILE = __file__
# torch's frames between an op and this mode's handler (the handler runs wrapped by dynamo): never "via"
_PLUMBING = tuple(
    _TORCH_ROOT + part
    for part in ("_dynamo", "_compile.py", "_ops.py", os.path.join("utils", "_python_dispatch"))
)

# Ops whose result the host must read on every call (a scalar, or the size of a data-dependent output).
ALWAYS_SYNC = frozenset(
    {
        "aten._local_scalar_dense",  # .item(), int(t), float(t), bool(t), if t:
        "aten.nonzero",  # torch.where(cond), argwhere, boolean-mask indexing done by hand
        "aten.masked_select",
        "aten._unique",
        "aten._unique2",
        "aten.unique_dim",
        "aten.unique_consecutive",
        "aten.unique_dim_consecutive",
        "aten.equal",
        "aten.bincount",
        "torchvision.nms",  # copies its suppression mask to the host
    }
)
_INDEXING = frozenset({"aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"})
_COPIES = frozenset({"aten._to_copy", "aten.copy_", "aten.copy"})
TOLIST = "Tensor.tolist"
BACKWARD = "backward"


@dataclass(frozen=True)
class Site:
    """The Python line that issued an op: the innermost frame outside torch itself."""

    path: str
    line: int
    function: str

    @property
    def in_project(self) -> bool:
        """Whether the line is this repository's code (not an installed package's)."""
        path = Path(self.path)
        return path.is_relative_to(PROJECT_ROOT) and "site-packages" not in path.parts

    def __str__(self) -> str:
        return f"{_short_path(self.path)}:{self.line} ({self.function})"


@dataclass(frozen=True)
class HostSync:
    """One op that would synchronise, where it came from and in which section of the block."""

    op: str
    section: str
    site: Site | None  # the innermost line outside torch
    via: Site | None  # the innermost line inside torch, when torch's own Python code issued the op

    def __str__(self) -> str:
        return f"{self.op} at {self.site}" + (f" via {self.via}" if self.via else "")


def synchronises(func: torch._ops.OpOverload, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """Whether an aten op, called with these arguments, makes the host wait for the GPU."""
    name = str(func.overloadpacket)
    if name in ALWAYS_SYNC:
        return True
    if name in _INDEXING:  # a boolean mask among the indices: the kept count is read back
        return any(_is_mask(index) for index in args[1] if index is not None)
    if name == "aten.repeat_interleave":  # repeats as a tensor, no output_size: the length is read back
        return func.name().endswith("Tensor") and kwargs.get("output_size") is None
    if name in _COPIES:
        return _crosses_devices(name, args, kwargs)
    return False


def _is_mask(index: object) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


def _crosses_devices(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """A blocking copy between the host and a device (copy_'s third argument is ``non_blocking``)."""
    if kwargs.get("non_blocking", len(args) > 2 and args[2]):
        return False
    if name == "aten._to_copy":
        target = kwargs.get("device")
        return target is not None and torch.device(target).type != args[0].device.type
    return args[0].device.type != args[1].device.type


class HostSyncCounter(TorchDispatchMode):
    """While active: aten ops dispatched and host synchronisations, per section of the caller's choosing.

    ``with counter.section("backbone"):`` or ``counter.filed("backbone", module.forward)`` files what runs
    inside under that name (outside any, ``default_section``); ops that autograd's engine runs go under
    ``"backward"``, which no module owns. ``host_tensors`` are those that stay on the CPU on a GPU run too
    (an optimizer's step counts): reading them back makes no one wait.
    """

    def __init__(self, default_section: str = "other", host_tensors: Iterable[torch.Tensor] = ()) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.syncs: list[HostSync] = []
        self.current = default_section
        self._host = {id(tensor): tensor for tensor in host_tensors}  # the values keep the ids alive

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        """File the ops run inside under ``name`` (sections nest; the innermost wins)."""
        outer, self.current = self.current, name
        try:
            yield
        finally:
            self.current = outer

    def filed(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function``, with what it runs filed under ``name`` (to replace a method such as ``forward``;
        the wrapper, being this module's, is never named as the line that issued an op)."""

        @functools.wraps(function)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.section(name):
                return function(*args, **kwargs)

        return run

    def _section_now(self) -> str:
        return BACKWARD if torch._C._current_graph_task_id() != -1 else self.current

    def _on_host(self, args: Sequence[Any]) -> bool:
        tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
        return bool(tensors) and all(id(tensor) in self._host for tensor in tensors)

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        section = self._section_now()
        self.ops[section] += 1
        if synchronises(func, args, kwargs) and not self._on_host(args):
            self.syncs.append(HostSync(str(func.overloadpacket), section, *issuing_sites()))
        return func(*args, **kwargs)

    def __enter__(self) -> HostSyncCounter:
        tolist = torch.Tensor.tolist
        counter = self

        def counted_tolist(tensor: torch.Tensor) -> Any:
            if not counter._on_host([tensor]):
                counter.syncs.append(HostSync(TOLIST, counter._section_now(), *issuing_sites()))
            return tolist(tensor)

        torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign,assignment]
        super().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().__exit__(exc_type, exc, traceback)
        del torch.Tensor.tolist  # torch.Tensor inherits it from its C base again

    def project_syncs(self) -> list[HostSync]:
        """The synchronisations issued by a line of this repository (not by torch or a package)."""
        return [sync for sync in self.syncs if sync.site is not None and sync.site.in_project]

    def syncs_by_section(self) -> Counter[str]:
        return Counter(sync.section for sync in self.syncs)

    def syncs_by_site(self) -> Counter[str]:
        """``op at file:line`` -> how many times, for a list of findings."""
        return Counter(str(sync) for sync in self.syncs)


def issuing_sites() -> tuple[Site | None, Site | None]:
    """The line that asked for an op, outside torch, and the torch line in between if there is one
    (``torch/optim/...``, ``torch/functional.py``, autograd's engine), innermost first."""
    frame: FrameType | None = sys._getframe(1)
    via = None
    while frame is not None:
        path = frame.f_code.co_filename
        if path != _THIS_FILE and not path.startswith(_PLUMBING):
            site = Site(path, frame.f_lineno, frame.f_code.co_name)
            if not path.startswith(_TORCH_ROOT):
                return site, via
            via = via or site
        frame = frame.f_back
    return None, via


def _short_path(path: str) -> str:
    parts = Path(path).parts
    if "site-packages" in parts:
        return str(Path(*parts[parts.index("site-packages") + 1 :]))
    if Path(path).is_relative_to(PROJECT_ROOT):
        return str(Path(path).relative_to(PROJECT_ROOT))
    return path
