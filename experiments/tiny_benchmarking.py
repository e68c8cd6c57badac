"""The Benchmarking baseline at CPU size (width 64, 4 blocks: window, global, window, global)."""

from .benchmarking_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train
from .common.tiny import IMAGE_SIZE, shrink_detector, shrink_recipe

model.backbone.bottom_up.update(
    img_size=IMAGE_SIZE, embed_dim=64, depth=4, num_heads=4, drop_path_rate=0.0, window_size=4, global_every=2
)
model.backbone.square_pad = IMAGE_SIZE
shrink_detector(model)
shrink_recipe(dataloader, train, optimizer, lr_multiplier)
