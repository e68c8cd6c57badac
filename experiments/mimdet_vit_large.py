"""MIMDet ViT-L (53.3 / 47.5 in the reference README, "still under-tuned"); the decoder stays 512 wide."""

from .mimdet_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(embed_dim=1024, depth=24, num_heads=16, pos_grid=14, drop_path_rate=0.2)
