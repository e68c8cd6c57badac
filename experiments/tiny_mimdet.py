"""MIMDet at CPU size (width 64, 4 blocks, 4 decoders of width 64): the paper's code path in minutes."""

from .common.tiny import shrink_detector, shrink_recipe
from .mimdet_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(
    embed_dim=64, depth=4, num_heads=4, pos_grid=16, drop_path_rate=0.0, decoder_dim=64, decoder_heads=4
)
shrink_detector(model)
shrink_recipe(dataloader, train, optimizer, lr_multiplier)
