"""Benchmarking ViT-B as the reference code built it (118,674,184 parameters): shared relative-position
tables, no class slot in the position table, GroupNorm(32) in the adaptors (the ``reference`` flavor)."""

from mimdet.modeling.flavors import FLAVORS

from .benchmarking_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(FLAVORS["reference"].benchmarking)
