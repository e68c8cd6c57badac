"""The "stronger" Mask R-CNN of Li et al. that MIMDet uses, around a C2..C5 backbone left to fill in.

From detectron2's FPN Mask R-CNN: RPN with two convs; box head 4 conv + 1 fc; mask head 4 conv; BN
(SyncBN across GPUs) in FPN and in the heads; RGB input with ImageNet statistics, as MAE pre-trains.
"""

from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool

NORM = "SyncBN"

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
model.backbone = L(FPN)(
    bottom_up=None,
    in_features=["c2", "c3", "c4", "c5"],
    out_channels=256,
    norm=NORM,
    top_block=L(LastLevelMaxPool)(),
)
model.proposal_generator.head.conv_dims = [-1, -1]
model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
model.roi_heads.box_head.fc_dims = [1024]
model.roi_heads.box_head.conv_norm = NORM
model.roi_heads.mask_head.conv_norm = NORM
model.pixel_mean = [123.675, 116.28, 103.53]
model.pixel_std = [58.395, 57.12, 57.375]
model.input_format = "RGB"
