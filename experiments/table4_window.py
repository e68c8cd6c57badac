"""Table 4, row 3: the ViT sees every token in 7x7 windows; no sampling, no decoder; C4/C5 from the ViT."""

from .mimdet_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(sampling="window", window_size=7, train_sample_ratio=1.0, num_decoders=0)
