"""MIMDet ViT-B, the paper's default: train ratio 0.5, inference ratio 1.0, 4 MAE decoders (51.5 / 46.0).

    python -m mimdet.train --config-file experiments/mimdet_vit_base.py --num-gpus 8 \
        train.mae_checkpoint=mae_pretrain_vit_base_full.pth
"""

from detectron2.config import LazyCall as L

from mimdet.modeling import MIMDetBackbone
from mimdet.modeling.flavors import FLAVORS

from .common.coco_recipe import dataloader, dataset_paths, lr_multiplier, optimizer, train
from .common.mask_rcnn import model

model.backbone.bottom_up = L(MIMDetBackbone)(
    embed_dim=768,
    depth=12,
    num_heads=12,
    pos_grid=50,  # ~800 / 16: tables stored for the test-time grid, resized per batch
    drop_path_rate=0.1,
    sampling="random",
    train_sample_ratio=0.5,
    test_sample_ratio=1.0,
    num_decoders=4,
    decoder_dim=512,
    decoder_heads=16,
    fpn_inputs="hybrid",
    norm="${..norm}",
    **FLAVORS["paper"].mimdet,  # stem norm, LayerNorm eps, C5 pooling, decoder fill, padding order
)
