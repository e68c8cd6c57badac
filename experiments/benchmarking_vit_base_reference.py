"""Benchmarking ViT-B as the reference code built it (118,674,184 parameters): shared relative-position
tables, no class slot in the position table, GroupNorm(32) in the adaptors (the ``reference`` flavor).

Its training from MAE weights follows the reference too: a position table that starts from its own
sin-cos table and lecun-normal adaptors (the flavor), the heads' norms and fp16 gradient all-reduce
(``common.reference_recipe``), one learning rate for every parameter (8e-5, where the
paper config has 1e-4), weight decay on biases (not on norms, the position table and the
relative-position tables), a cosine schedule to zero after a quarter epoch of warm-up, and large-scale
jitter whose crop pads every image to 1024x1024 with grey (128) before the flip. It is evaluated as the
reference evaluates it: each test image, its long side resized to 1024, padded with grey to 1024x1024,
and the detections scaled back by the resize's one factor (``PaddedCanvasRCNN``).
"""

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from fvcore.common.param_scheduler import CosineParamScheduler

from mimdet.modeling.canvas_rcnn import PaddedCanvasRCNN
from mimdet.modeling.flavors import FLAVORS

from .benchmarking_vit_base import (
    IMAGE_SIZE,
    dataloader,
    dataset_paths,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from .common.reference_recipe import reference_detector

model._target_ = PaddedCanvasRCNN
model.backbone.bottom_up.update(FLAVORS["reference"].benchmarking)
reference_detector(model, train)

optimizer.lr = 8e-5
optimizer.params.lr_factor_func = None
optimizer.params.weight_decay_bias = None  # biases decay as the weights

lr_multiplier.scheduler = L(CosineParamScheduler)(start_value=1.0, end_value=0.0)
lr_multiplier.warmup_length = 0.25 / 100
del train["lr_step_epochs"]  # no steps: cosine

dataloader.train.mapper.augmentations = [
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=IMAGE_SIZE, target_width=IMAGE_SIZE),
    L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE, IMAGE_SIZE), pad=True, pad_value=128.0),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE, max_size=IMAGE_SIZE),
    L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE, IMAGE_SIZE), pad=True, pad_value=128.0),
]
