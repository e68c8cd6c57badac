"""Benchmarking ViT-B (Li et al.): patchify stem at 1024x1024, 16x16 windows with a global block every
third, relative position biases, deconv/identity/pool adaptors; large-scale jitter; 100 epochs (50.4 /
44.9 in the reference README's re-implementation)."""

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from mimdet.modeling import BenchmarkingViT
from mimdet.modeling.flavors import FLAVORS

from .common.coco_recipe import dataloader, dataset_paths, lr_multiplier, optimizer, train
from .common.mask_rcnn import model

IMAGE_SIZE = 1024

model.backbone.bottom_up = L(BenchmarkingViT)(
    img_size=IMAGE_SIZE,
    embed_dim=768,
    depth=12,
    num_heads=12,
    drop_path_rate=0.1,
    window_size=16,
    global_every=3,
    **FLAVORS["paper"].benchmarking,  # relative positions, class slot, LayerNorm eps, adaptor norm
)
model.backbone.square_pad = IMAGE_SIZE

dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=IMAGE_SIZE, target_width=IMAGE_SIZE),
    L(T.FixedSizeCrop)(crop_size=(IMAGE_SIZE, IMAGE_SIZE), pad=False),
]
dataloader.train.mapper.recompute_boxes = True
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=IMAGE_SIZE, max_size=IMAGE_SIZE)
]

train.epochs = 100
train.epoch_images = 118_000  # ViTDet's epochs: 100 epochs = 184,375 iterations at batch 64
train.lr_step_epochs = [88, 96]
optimizer.lr = 1e-4
