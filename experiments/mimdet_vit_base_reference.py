"""MIMDet ViT-B as the reference code built the released model (4 decoders, r = 0.5; 127,954,768 parameters).

The ``reference`` flavor (``mimdet.modeling.flavors``) on the paper config, and the reference's recipe
(``common.reference_recipe``: heads' norms, fp16 gradient all-reduce, warm-up, training scales); its
learning-rate factors are the paper's (ViT x0.5, ConvStem x1, the rest x2). Evaluate a released checkpoint:

    python -m mimdet.convert_reference mimdet_vit_base_sr_0p5.pth vitb_converted.pth
    python -m mimdet.train --config-file experiments/mimdet_vit_base_reference.py --eval-only \
        --output runs/released-vitb train.init_checkpoint=vitb_converted.pth
"""

from mimdet.modeling.flavors import FLAVORS

from .common.reference_recipe import reference_detector, reference_mimdet_recipe
from .mimdet_vit_base import dataloader, dataset_paths, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.update(FLAVORS["reference"].mimdet)
reference_detector(model, train)
reference_mimdet_recipe(dataloader, lr_multiplier)
