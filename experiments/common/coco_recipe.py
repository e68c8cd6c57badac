"""The paper's fine-tuning recipe on COCO (§3.1 and the reference README).

train2017 / val2017; total batch 64; AdamW lr 8e-5, weight decay 0.1 (none on norms, biases, position
tables); ViT at x0.5, decoder/FPN/heads at x2; 36 epochs with steps at epochs 27 and 33 and a short
linear warm-up; multi-scale training (short side 480-800, long side <= 1333) with random crop; test at
800/1333; AMP. Iterations are derived from epochs and batch size (see ``mimdet.run.schedule``).
"""

import detectron2.data.transforms as T
import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from detectron2.solver.build import get_default_optimizer_params
from fvcore.common.param_scheduler import MultiStepParamScheduler

import mimdet.run.schedule  # registers the ${mimdet.iters:...} resolver
from mimdet.run.solver import lr_factor, no_decay_overrides

dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    # DETR/Swin-style crop: half of the time resize to 400-600, crop 384-600, then resize multi-scale.
    L(T.RandomApply)(
        tfm_or_aug=L(T.AugmentationList)(
            augs=[
                L(T.ResizeShortestEdge)(short_edge_length=(400, 500, 600), sample_style="choice"),
                L(T.RandomCrop)(crop_type="absolute_range", crop_size=(384, 600)),
            ]
        ),
        prob=0.5,
    ),
    L(T.ResizeShortestEdge)(
        short_edge_length=tuple(range(480, 801, 32)), max_size=1333, sample_style="choice"
    ),
]
dataloader.train.total_batch_size = 64
dataloader.evaluator.use_fast_impl = False  # detectron2 without _C: plain pycocotools

# Datasets by path, registered by the entry point before training: {name: [instances.json, image_root]}.
# E.g. dataset_paths={mine_train:[/data/a.json,/data/img]} dataloader.train.dataset.names=mine_train
dataset_paths = {}

optimizer = L(torch.optim.AdamW)(
    params=L(get_default_optimizer_params)(
        base_lr="${..lr}",
        weight_decay_norm=0.0,
        weight_decay_bias=0.0,
        lr_factor_func=lr_factor,
        overrides=no_decay_overrides(),
    ),
    lr=8e-5,
    betas=(0.9, 0.999),
    weight_decay=0.1,
)

train = model_zoo.get_config("common/train.py").train
train.epochs = 36
train.lr_step_epochs = [27, 33]
train.epoch_images = mimdet.run.schedule.EPOCH_IMAGES
train.max_iter = "${mimdet.iters:${train.epochs},${dataloader.train.total_batch_size},${train.epoch_images}}"
train.amp.enabled = True
train.checkpointer.period = 5000
train.eval_period = 0  # no periodic evaluation
train.final_eval = True  # evaluate once at the end (sweeps turn it off: their eval stage does it)
train.eval_precise_bn_iters = 0  # N > 0: BatchNorm statistics re-estimated at the test ratio first
train.mae_checkpoint = ""  # official MAE pre-training checkpoint (mae_pretrain_vit_*_full.pth)
train.allow_partial_init = False  # True: an init_checkpoint that does not fit loads what fits, else an error
train.seed = 0

# Milestones in epochs: the scheduler is scale-free (fractions of num_updates), so they follow max_iter.
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(
        values=[1.0, 0.1, 0.01], milestones="${train.lr_step_epochs}", num_updates="${train.epochs}"
    ),
    warmup_length=0.015,  # ~1,000 of 67,500 iterations
    warmup_method="linear",
    warmup_factor=0.001,
)
