"""The MIMDet backbone never makes the host wait for the GPU (issue 12), and the counter that shows it
(``mimdet.run.host_syncs``) finds each kind of synchronising op, at its line, and only those."""

from __future__ import annotations

import inspect

import pytest
import torch
from detectron2.config import instantiate

from mimdet.modeling.flavors import FLAVORS
from mimdet.run.config import load_config
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


def _tiny_backbone(device: str, **settings: object) -> torch.nn.Module:
    cfg = load_config("tiny_mimdet.py")
    cfg.model.backbone.bottom_up.update(settings)
    torch.manual_seed(0)
    with torch.device(device):
        return instantiate(cfg.model.backbone.bottom_up)


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(
    "settings",
    [{}, dict(FLAVORS["reference"].mimdet), {"canvas_multiple": 64}],
    ids=["tiny config", "reference flavor", "canvas"],
)
def test_the_backbone_never_waits_for_the_gpu(settings: dict, device: str) -> None:
    """Train at 0.5 (forward and backward), evaluate at 1.0 and 0.5 (tokens drawn on the host), on a batch
    whose second image is three-quarters padding (so that its kept tokens include padding): no host
    synchronisation at all. The meta device stands for the GPU: a blocking copy from the host to it
    counts, where on the CPU there is nothing to copy."""
    backbone = _tiny_backbone(device, train_sample_ratio=0.5, test_sample_ratio=1.0, **settings)
    images = torch.randn(2, 3, 96, 128)
    images[1, :, 48:, :] = 0
    images[1, :, :, 64:] = 0
    images = images.to(device)
    for mode, ratio in [("train", 0.5), ("eval", 1.0), ("eval", 0.5)]:
        backbone.train(mode == "train")
        backbone.test_sample_ratio = ratio
        with HostSyncCounter() as counter:
            outputs = backbone(images)
            if mode == "train":
                sum(output.sum() for output in outputs.values()).backward()
        assert counter.syncs == [], f"{mode} at {ratio}: {counter.syncs_by_site()}"
        assert counter.ops["other"] > 100  # the counter did see the forward
