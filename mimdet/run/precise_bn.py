"""BatchNorm statistics at the inference sample ratio: detectron2's PreciseBN, run before an evaluation.

The FPN and the heads normalise with running statistics gathered while training, at the training sample
ratio. Evaluated at another ratio, a MIMDet backbone hands them C4 / C5 maps of another level (the
decoder reads a different mix of real and filled tokens), and the frozen statistics turn that shift into
a loss for the whole detector; on the tiny model it hides the gain that the extra tokens bring
(docs/tiny_recipe.md). Re-estimating the statistics on training batches drawn at the inference ratio,
weights untouched, removes that. It is a change of the evaluation protocol: off by default (the paper's
protocol), on with ``train.eval_precise_bn_iters=N``, which the run's record keeps among its overrides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from detectron2.utils.events import EventStorage
from fvcore.nn.precise_bn import update_bn_stats
from torch import nn

logger = logging.getLogger(__name__)


def recalibrate_batchnorm(model: nn.Module, train_loader: Iterable, iterations: int) -> None:
    """Re-estimate every BatchNorm's running statistics over ``iterations`` training batches, the backbone
    sampling at its test ratio; the model is left in eval mode, its weights unchanged."""
    backbone = model.get_submodule("backbone.bottom_up")
    train_ratio = getattr(backbone, "train_sample_ratio", None)  # a backbone without sampling has none
    test_ratio = getattr(backbone, "test_sample_ratio", None)
    logger.info(
        "BatchNorm statistics at the test sample ratio %s, over %d training batches", test_ratio, iterations
    )
    if test_ratio is not None:
        backbone.train_sample_ratio = test_ratio
    model.train()
    try:
        with EventStorage():  # the detector logs its training statistics there
            update_bn_stats(model, train_loader, iterations)
    finally:
        if train_ratio is not None:
            backbone.train_sample_ratio = train_ratio
        model.eval()  # re-seeds the backbone's evaluation draw
