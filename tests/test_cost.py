"""What a run's record says it cost: steps on a repeated batch shape and on a new one kept apart."""

from __future__ import annotations

import pytest
import torch
from detectron2.engine import SimpleTrainer

from mimdet.data.random_batch import random_inputs
from mimdet.run import cost
from mimdet.run.config import build_model, load_config
from mimdet.run.cost import CostHook


def test_steps_are_timed_by_whether_their_batch_shape_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 3 sizes in a known order through a real tiny detector and detectron2's trainer: after
    the warm-up, steps on a size met before and steps on a first-met size land in separate medians."""
    monkeypatch.setattr(cost, "WARMUP_ITERATIONS", 2)
    cfg = load_config("tiny_mimdet.py")
    torch.manual_seed(0)
    model = build_model(cfg).train()
    classes = cfg.model.roi_heads.num_classes
    small, wide, tall = (
        random_inputs([hw], num_classes=classes) for hw in [(128, 128), (128, 192), (192, 128)]
    )
    # the hook's memory probe takes the first batch; then: small, small | wide, small, tall, wide, small
    batches = [small, small, small, wide, small, tall, wide, small]
    trainer = SimpleTrainer(model, iter(batches), torch.optim.SGD(model.parameters(), lr=0.0))
    hook = CostHook("cpu")
    trainer.register_hooks([hook])
    trainer.train(0, len(batches) - 1)
    split = hook.shape_split
    assert split.shapes == 3
    assert len(hook._new_shape_times) == 2 and len(hook._repeated_shape_times) == 3
    assert split.new_shape_s is not None and split.repeated_shape_s is not None
    assert hook._shape_hook is not None and not model.backbone._forward_hooks  # removed after training
