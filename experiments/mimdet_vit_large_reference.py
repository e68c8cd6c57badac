"""MIMDet ViT-L as the reference code built the released model (349,332,080 parameters).

The ``reference`` flavor on the paper's ViT-L config; the reference code also stores its position tables
for the 50x50 grid of an 800 px image (not MAE's 14x14) and uses stochastic depth 0.4.
"""

from mimdet.modeling.flavors import FLAVORS

from .mimdet_vit_large import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(FLAVORS["reference"].mimdet)
model.backbone.bottom_up.update(pos_grid=50, drop_path_rate=0.4)
