"""What the reference code (hustvl/MIMDet v1.2) trains with beyond the model, for the ``*_reference.py``
configs: a training from MAE weights there runs as the released models' did.

- ``reference_detector``: the heads' norms synchronise batch statistics across GPUs weighted by each
  GPU's share of the RoIs (detectron2's ``naiveSyncBN_N``; ``SyncBN`` weights every GPU alike), in the
  box and the mask head; DDP all-reduces the gradients in fp16.
- ``reference_mimdet_recipe``: MIMDet's warm-up lasts a quarter epoch and starts from a rate of zero;
  its multi-scale training draws the short side from nine sizes, 480-800 without 672 and 704.
"""

HEAD_NORM = "naiveSyncBN_N"
MIMDET_SCALES = (480, 512, 544, 576, 608, 640, 736, 768, 800)
MIMDET_EPOCHS = 36


def reference_detector(model, train):
    """The reference's heads' norms and gradient all-reduce on a paper config's ``model``/``train``."""
    model.roi_heads.box_head.conv_norm = HEAD_NORM
    model.roi_heads.mask_head.conv_norm = HEAD_NORM
    train.ddp.fp16_compression = True


def reference_mimdet_recipe(dataloader, lr_multiplier):
    """The reference's warm-up and training scales on a paper MIMDet config (``common.coco_recipe``)."""
    lr_multiplier.warmup_length = 0.25 / MIMDET_EPOCHS
    lr_multiplier.warmup_factor = 0.0
    dataloader.train.mapper.augmentations[-1].short_edge_length = MIMDET_SCALES
