"""The counter of host synchronisations (``mimdet.run.host_syncs``) finds each kind of synchronising op,
at its line, and only those."""

from __future__ import annotations

import inspect

import pytest
import torch

from mimdet.run.host_syncs import HostSyncCounter

X = torch.arange(12.0).reshape(3, 4)
MASK = X > 4
REPEATS = torch.tensor([1, 2, 0])
TOLIST = torch.Tensor.tolist

SYNCING = {
    ".item()": lambda: X[0, 0].item(),
    "if tensor": lambda: bool(X.sum()),
    "int(tensor)": lambda: int(X.argmax()),
    "boolean mask": lambda: X[MASK],
    "boolean mask assigned": lambda: X.clone().__setitem__(MASK, 0.0),
    "torch.where(cond)": lambda: torch.where(MASK),
    "nonzero": lambda: MASK.nonzero(),
    "masked_select": lambda: X.masked_select(MASK),
    "unique": lambda: X.unique(),
    "repeat_interleave by a tensor": lambda: X.repeat_interleave(REPEATS, dim=0),
    "tolist": lambda: X.tolist(),
    "equal": lambda: torch.equal(X, X),
    "blocking copy to a device": lambda: X.to("meta"),  # meta stands for the GPU
}
NOT_SYNCING = {
    "topk": lambda: X.topk(2, dim=1),
    "argsort and gather": lambda: X.gather(1, X.argsort(dim=1)[:, :2]),
    "torch.where(cond, a, b)": lambda: torch.where(MASK, X, 0.0),
    "masked_fill": lambda: X.masked_fill(MASK, 0.0),
    "repeat_interleave by an int": lambda: X.repeat_interleave(2, dim=0),
    "repeat_interleave with output_size": lambda: X.repeat_interleave(REPEATS, dim=0, output_size=3),
    "sizes from the shape": lambda: X.new_zeros(X.shape[0] * 2),
    "index by a long tensor": lambda: X[REPEATS],
    "non-blocking copy to a device": lambda: X.to("meta", non_blocking=True),
}


@pytest.mark.parametrize("name", list(SYNCING))
def test_each_synchronising_op_is_found_at_its_line(name: str) -> None:
    with HostSyncCounter() as counter:
        SYNCING[name]()
    assert len(counter.syncs) == 1, [str(sync) for sync in counter.syncs]
    (sync,) = counter.syncs
    line = inspect.getsourcelines(SYNCING[name])[1]
    assert sync.site is not None and sync.site.in_project
    assert (sync.site.path, sync.site.line) == (__file__, line)
    assert f"tests/test_host_syncs.py:{line} (<lambda>)" in str(sync)


@pytest.mark.parametrize("name", list(NOT_SYNCING))
def test_ops_that_stay_on_the_device_are_not_counted(name: str) -> None:
    with HostSyncCounter() as counter:
        NOT_SYNCING[name]()
    assert counter.syncs == [] and sum(counter.ops.values()) > 0


def test_sections_backward_and_host_tensors() -> None:
    """Ops go to the section they ran in, autograd's to "backward"; a host tensor's read is no sync."""
    step = torch.tensor(3.0)
    weight = torch.ones(3, requires_grad=True)
    with HostSyncCounter(default_section="outside", host_tensors=[step]) as counter:
        step.item()
        loss = counter.filed("forward", lambda: (weight * 2)[weight > 0].sum())()
        loss.backward()  # the backward of a boolean-mask index puts through the same mask
    assert set(counter.ops) == {"outside", "forward", "backward"}
    assert counter.syncs_by_section() == {"forward": 1, "backward": 1}
    assert torch.Tensor.tolist is TOLIST  # unwrapped again
