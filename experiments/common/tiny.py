"""Shrinks the detector and the recipe to CPU size: same classes and code path, ~1 M parameters.

Applied by the tiny configs to a paper config's ``model``/``dataloader``/``train``; the backbone widths are
set by each tiny config. Data: the synthetic COCO-format shapes (``mimdet.data``), images <= 256 px.
"""

from detectron2.layers import ShapeSpec

FPN_WIDTH = 32
IMAGE_SIZE = 256
NUM_CLASSES = 5
# Boxes and anchors are the paper's divided by this: its images are ~1024 px (short side 800, long <= 1333),
# these 256. detectron2 pools a box of sqrt(area) 224 px from P4; unscaled, every box of these images
# but the largest would pool from P2, the ConvStem's stride-4 map, and the ViT's tokens would reach the
# heads only through the FPN's top-down path (docs/tiny_recipe.md).
SCALE_DOWN = 4
PAPER_ANCHOR_SIZES = (32, 64, 128, 256, 512)
DETECTRON2_CANONICAL_BOX_SIZE = 224  # ROIPooler: pooled from P4


def shrink_detector(model, num_classes=NUM_CLASSES, width=FPN_WIDTH):
    """FPN and heads at ``width`` channels, anchors for small images."""
    model.backbone.out_channels = width
    model.backbone.norm = "BN"
    model.proposal_generator.head.in_channels = width
    model.proposal_generator.anchor_generator.sizes = [[size // SCALE_DOWN] for size in PAPER_ANCHOR_SIZES]
    model.proposal_generator.pre_nms_topk = (600, 300)
    model.proposal_generator.post_nms_topk = (200, 100)
    heads = model.roi_heads
    heads.num_classes = num_classes
    heads.batch_size_per_image = 64
    heads.box_head.input_shape = ShapeSpec(channels=width, height=7, width=7)
    heads.box_head.conv_dims = [width] * 4
    heads.box_head.fc_dims = [2 * width]
    heads.box_head.conv_norm = "BN"
    heads.box_predictor.input_shape = ShapeSpec(channels=2 * width)
    heads.mask_head.input_shape = ShapeSpec(channels=width, width=14, height=14)
    heads.mask_head.conv_dims = [width] * 5
    heads.mask_head.conv_norm = "BN"
    for pooler in (heads.box_pooler, heads.mask_pooler):
        pooler.canonical_box_size = DETECTRON2_CANONICAL_BOX_SIZE // SCALE_DOWN


def shrink_recipe(dataloader, train, optimizer, lr_multiplier):
    """Synthetic data at <= 256 px on the CPU, full precision, a schedule of minutes."""
    import detectron2.data.transforms as T
    from detectron2.config import LazyCall as L

    dataloader.train.dataset.names = "synthetic_train"
    dataloader.test.dataset.names = "synthetic_val"
    dataloader.train.mapper.augmentations = [
        L(T.RandomFlip)(horizontal=True),
        L(T.ResizeShortestEdge)(
            short_edge_length=(192, 224, 256), max_size=IMAGE_SIZE, sample_style="choice"
        ),
    ]
    dataloader.test.mapper.augmentations = [
        L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE, max_size=IMAGE_SIZE)
    ]
    dataloader.train.total_batch_size = 4
    dataloader.train.num_workers = 1
    dataloader.test.num_workers = 1
    train.epoch_images = 320  # the synthetic train split
    train.epochs = 12
    train.lr_step_epochs = [9, 11]
    train.amp.enabled = False
    train.device = "cpu"
    train.mae_checkpoint = "tiny-mae"  # the cached tiny MAE pre-training (mimdet.pretrain_mae)
    train.checkpointer.period = 200
    train.log_period = 20
    # measured with every box pooled from P2: 1,000 iterations reach 18.8 box AP at 1e-3, 2.7 at 4e-4
    optimizer.lr = 1e-3
    lr_multiplier.warmup_length = 0.05
