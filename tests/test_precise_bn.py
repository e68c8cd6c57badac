"""BatchNorm statistics re-estimated at the test sample ratio: only the statistics change, at that ratio."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.config import instantiate

from mimdet.run.config import build_model
from mimdet.run.precise_bn import recalibrate_batchnorm
from mimdet.run.resolve import resolve_run
from mimdet.train import register_datasets
from tests.micro import micro_dataset, micro_overrides


@pytest.fixture(scope="module")
def micro_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return micro_dataset(tmp_path_factory.mktemp("data"))


def test_only_the_statistics_change_and_at_the_test_ratio(micro_data: Path) -> None:
    ratios = [
        "model.backbone.bottom_up.train_sample_ratio=0.5",
        "model.backbone.bottom_up.test_sample_ratio=0.25",
    ]
    cfg = resolve_run("experiments/tiny_mimdet.py", [*micro_overrides(micro_data), *ratios]).cfg
    register_datasets(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, "cpu").eval()
    backbone = model.get_submodule("backbone.bottom_up")
    weights = {name: p.detach().clone() for name, p in model.named_parameters()}
    statistics = {name: b.clone() for name, b in model.named_buffers() if name.endswith("running_mean")}
    seen: list[tuple[bool, float]] = []
    hook = backbone.register_forward_hook(lambda m, *_: seen.append((m.training, m.sample_ratio)))

    recalibrate_batchnorm(model, instantiate(cfg.dataloader.train), 2)

    hook.remove()
    assert seen == [(True, 0.25), (True, 0.25)]  # training batches, sampled at the test ratio
    assert not model.training and backbone.train_sample_ratio == 0.5 and backbone.test_sample_ratio == 0.25
    assert all(torch.equal(p, weights[name]) for name, p in model.named_parameters())
    buffers = dict(model.named_buffers())
    assert statistics and all(not torch.equal(buffers[name], before) for name, before in statistics.items())
