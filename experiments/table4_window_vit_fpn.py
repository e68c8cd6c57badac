"""Table 4, row 4: as row 3, and P2/P3 come from intermediate ViT blocks (Li et al.'s adaptors)."""

from .table4_window import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.fpn_inputs = "vit"
