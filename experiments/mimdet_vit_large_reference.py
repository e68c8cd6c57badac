"""MIMDet ViT-L as the reference code built the released model (349,332,080 parameters).

The ``reference`` flavor and recipe on the paper's ViT-L config; the reference code also stores its
position tables for the 50x50 grid of an 800 px image (not MAE's 14x14), uses stochastic depth 0.4, and
scales its learning-rate factors by 3.5 where ViT-B's are 2: the ViT at x1/3.5, the decoder, FPN and
heads at x3.5 (the ConvStem stays at x1).
"""

from detectron2.config import LazyCall as L

from mimdet.modeling.flavors import FLAVORS
from mimdet.run.solver import LrFactors

from .common.reference_recipe import reference_detector, reference_mimdet_recipe
from .mimdet_vit_large import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(FLAVORS["reference"].mimdet)
model.backbone.bottom_up.update(pos_grid=50, drop_path_rate=0.4)
reference_detector(model, train)
reference_mimdet_recipe(dataloader, lr_multiplier)
optimizer.params.lr_factor_func = L(LrFactors)(encoder=1 / 3.5, task=3.5)
