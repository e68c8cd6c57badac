"""A reference-flavor training from MAE weights starts and is optimised as the reference code's did.

Pinned without the reference code (hustvl/MIMDet v1.2): the statistics of what the reference initialises
itself, the optimiser's learning rate and weight decay per parameter, the schedules and the data
augmentation of the ``*_reference.py`` configs and the Benchmarking ViT's evaluation on a padded canvas,
each written down here from the reference's configs.
The paper configs keep the paper's recipe.
"""

from __future__ import annotations

import math

import detectron2.data.transforms as T
import numpy as np
import pytest
import torch
from detectron2.config import instantiate
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from torch import nn

from mimdet.modeling import BenchmarkingViT
from mimdet.modeling.canvas_rcnn import PaddedCanvasRCNN, rescale_from_canvas
from mimdet.run.config import build_model, load_config
from mimdet.run.solver import LrFactors, lr_factor

WIDTH = 256  # adaptor fan_in: 256 output channels x 2 x 2 = 1024
NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def small_benchmarking(**switches: object) -> BenchmarkingViT:
    torch.manual_seed(0)
    return BenchmarkingViT(
        img_size=256, embed_dim=WIDTH, depth=2, num_heads=2, window_size=4, global_every=2, **switches
    )


def test_lecun_adaptors_start_truncated_normal_of_variance_one_over_fan_in() -> None:
    deconvs = [
        m
        for m in small_benchmarking(adaptor_init="lecun").adaptors.modules()
        if isinstance(m, nn.ConvTranspose2d)
    ]
    assert len(deconvs) == 3
    std = 1 / math.sqrt(WIDTH * 4)
    for deconv in deconvs:
        weight = deconv.weight
        assert weight.std().item() == pytest.approx(std, rel=0.02)
        assert abs(weight.mean().item()) < 0.02 * std
        assert weight.abs().max().item() <= 2 * std / 0.8796 + 1e-6  # cut at two of its own deviations
        assert not deconv.bias.any()


def test_torch_adaptors_start_as_pytorch_does() -> None:
    bound = 1 / math.sqrt(WIDTH * 4)
    for deconv in (m for m in small_benchmarking().adaptors.modules() if isinstance(m, nn.ConvTranspose2d)):
        assert deconv.weight.abs().max().item() <= bound
        assert deconv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
        assert deconv.bias.abs().max().item() <= bound and deconv.bias.any()


def test_sincos_position_table_puts_the_row_first_and_stays_learnable() -> None:
    """Token (r, c) of the 16x16 grid: [sin r w, cos r w, sin c w, cos c w], w_i = 10000^(-i / (D/4))."""
    table = small_benchmarking(pos_init="sincos", pos_cls_slot=False).pos_embed
    assert table.requires_grad and table.shape == (1, 16 * 16, WIDTH)
    rows, cols = torch.arange(256) // 16, torch.arange(256) % 16
    omega = 10000.0 ** (-torch.arange(WIDTH // 4, dtype=torch.float64) / (WIDTH // 4))
    parts = [f(axis[:, None] * omega) for axis in (rows, cols) for f in (torch.sin, torch.cos)]
    assert torch.allclose(table[0].double(), torch.cat(parts, dim=1), atol=1e-6)
    with_slot = small_benchmarking(pos_init="sincos").pos_embed
    assert not with_slot[0, 0].any() and torch.equal(with_slot[0, 1:], table[0])


def test_the_mae_start_is_a_small_random_table_until_mae_loads() -> None:
    table = small_benchmarking().pos_embed
    assert table.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("switch", [dict(pos_init="learned"), dict(adaptor_init="xavier")])
def test_unknown_init_switches_are_refused(switch: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="must be one of"):
        small_benchmarking(**switch)


def _groups(config: str) -> tuple[dict[str, tuple[float, float]], nn.Module, float]:
    """{trainable parameter: (lr, weight decay)} of a config's optimizer, on a meta-device model."""
    cfg = load_config(config)
    model = build_model(cfg, "meta")
    cfg.optimizer.params.model = model
    by_id = {}
    for group in instantiate(cfg.optimizer.params):
        for param in group["params"]:
            # a group without a setting takes the optimizer's own
            by_id[id(param)] = (
                group.get("lr", cfg.optimizer.lr),
                group.get("weight_decay", cfg.optimizer.weight_decay),
            )
    named = {name: by_id[id(p)] for name, p in model.named_parameters() if p.requires_grad}
    return named, model, cfg.optimizer.lr


@pytest.mark.parametrize(
    ("config", "scale"), [("mimdet_vit_base_reference.py", 2.0), ("mimdet_vit_large_reference.py", 3.5)]
)
def test_mimdet_reference_groups(config: str, scale: float) -> None:
    """The reference: ViT at lr / m, ConvStem at lr, the rest at lr x m; no decay on 1-D tensors, biases."""
    groups, model, base = _groups(config)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("backbone.bottom_up.stem."):
            lr = base
        elif name.startswith("backbone.bottom_up.encoder."):
            lr = base / scale
        else:
            lr = base * scale
        decay = 0.0 if param.ndim == 1 or name.endswith(".bias") else 0.1
        assert groups[name] == (pytest.approx(lr), decay), name
    assert base == 8e-5


def test_benchmarking_reference_groups() -> None:
    """The reference: one rate, 8e-5; decay 0.1 on everything but norms, the position and bias tables."""
    groups, model, base = _groups("benchmarking_vit_base_reference.py")
    no_decay = {
        f"{m}.{p}"
        for m, module in model.named_modules()
        if isinstance(module, NORMS)
        for p in ("weight", "bias")
    }
    for name, (lr, decay) in groups.items():
        expected = 0.0 if name in no_decay or name.endswith(("pos_embed", "bias_table")) else 0.1
        assert (lr, decay) == (8e-5, expected), name
    assert groups["backbone.bottom_up.blocks.0.attn.qkv.bias"][1] == 0.1
    assert base == 8e-5


def test_paper_factors_stay_the_papers() -> None:
    names = (
        "backbone.bottom_up.stem.stages.0.0.weight",
        "backbone.bottom_up.encoder.norm.weight",
        "roi_heads.x",
    )
    assert [lr_factor(n) for n in names] == [1.0, 0.5, 2.0] == [LrFactors()(n) for n in names]
    groups, _, base = _groups("benchmarking_vit_base.py")
    assert groups["backbone.bottom_up.blocks.0.attn.qkv.bias"] == (pytest.approx(base * 0.5), 0.0)


def _curve(config: str, wheres: list[float]) -> list[float]:
    scheduler = instantiate(load_config(config).lr_multiplier)
    return [scheduler(where) for where in wheres]


def test_mimdet_reference_warms_up_a_quarter_epoch_from_zero() -> None:
    quarter = 0.25 / 36
    lrs = _curve("mimdet_vit_base_reference.py", [0.0, quarter / 2, quarter, 0.5, 27.5 / 36, 33.5 / 36])
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.1, 0.01])
    assert _curve("mimdet_vit_base.py", [0.0, 0.015]) == pytest.approx([0.001, 1.0])  # the paper's


def test_benchmarking_reference_is_cosine_to_zero() -> None:
    warm = 0.25 / 100
    lrs = _curve("benchmarking_vit_base_reference.py", [0.0, warm, 0.5, 0.999999])
    assert lrs == pytest.approx([0.001, math.cos(math.pi * warm) / 2 + 0.5, 0.5, 0.0], abs=1e-6)
    assert _curve("benchmarking_vit_base.py", [0.5, 0.95]) == pytest.approx([1.0, 0.1])  # the paper's steps


def test_reference_recipes_data_and_detector() -> None:
    mimdet, paper = load_config("mimdet_vit_large_reference.py"), load_config("mimdet_vit_large.py")
    assert tuple(mimdet.dataloader.train.mapper.augmentations[-1].short_edge_length) == (
        480,
        512,
        544,
        576,
        608,
        640,
        736,
        768,
        800,
    )
    assert tuple(paper.dataloader.train.mapper.augmentations[-1].short_edge_length) == tuple(
        range(480, 801, 32)
    )
    bench = load_config("benchmarking_vit_base_reference.py")
    augs = instantiate(bench.dataloader.train.mapper.augmentations)
    assert [type(a).__name__ for a in augs] == ["ResizeScale", "FixedSizeCrop", "RandomFlip"]
    assert augs[1].pad and augs[1].pad_value == 128.0
    assert "lr_step_epochs" not in bench.train
    for cfg in (mimdet, bench):
        assert (
            cfg.model.roi_heads.box_head.conv_norm
            == cfg.model.roi_heads.mask_head.conv_norm
            == "naiveSyncBN_N"
        )
        assert cfg.train.ddp.fp16_compression and cfg.model.backbone.norm == "SyncBN"
    assert paper.model.roi_heads.box_head.conv_norm == "SyncBN" and not paper.train.ddp.fp16_compression


def test_benchmarking_reference_evaluates_on_a_grey_canvas() -> None:
    """The reference's test data: long side resized to 1024, padded with grey (128) to 1024x1024; the
    paper config resizes only (the backbone pads the batch, after normalisation)."""
    bench = load_config("benchmarking_vit_base_reference.py")
    assert bench.model._target_ is PaddedCanvasRCNN
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    tfm = T.AugmentationList(instantiate(bench.dataloader.test.mapper.augmentations))
    data = T.AugInput(image)
    tfm(data)
    assert data.image.shape[:2] == (1024, 1024)
    assert (data.image[:768] == 0).all() and (data.image[768:] == 128).all()
    paper = load_config("benchmarking_vit_base.py")
    assert paper.model._target_ is not PaddedCanvasRCNN
    assert [type(a).__name__ for a in instantiate(paper.dataloader.test.mapper.augmentations)] == [
        "ResizeShortestEdge"
    ]


def canvas_detections() -> Instances:
    """Three detections on a 1024x1024 canvas holding a 480x640 image resized to 768x1024."""
    found = Instances((1024, 1024))
    found.pred_boxes = Boxes(
        torch.tensor([[0.0, 0.0, 1024.0, 768.0], [512.0, 384.0, 612.0, 484.0], [100.0, 800.0, 200.0, 900.0]])
    )
    found.scores = torch.tensor([0.9, 0.8, 0.7])
    found.pred_classes = torch.zeros(3, dtype=torch.long)
    found.pred_masks = torch.ones(3, 1, 28, 28)
    return found


def test_detections_on_a_canvas_go_back_by_the_resize_factor() -> None:
    """One factor (640 / 1024) for both axes: the whole image stays the whole image, a box inside the
    grey padding is dropped; detectron2's per-axis ratio (480 / 1024 vertically) would squash them."""
    back = rescale_from_canvas(canvas_detections(), 480, 640)
    assert back.image_size == (480, 640)
    assert back.pred_boxes.tensor.tolist() == [[0.0, 0.0, 640.0, 480.0], [320.0, 240.0, 382.5, 302.5]]
    assert back.scores.tolist() == pytest.approx([0.9, 0.8])
    assert back.pred_masks.shape == (2, 480, 640) and back.pred_masks[0].float().mean() > 0.99
    squashed = detector_postprocess(canvas_detections(), 480, 640)
    assert squashed.pred_boxes.tensor[0].tolist() == [0.0, 0.0, 640.0, 360.0]


def test_padded_canvas_rcnn_returns_detections_on_the_original_image() -> None:
    """The tiny Benchmarking detector as ``PaddedCanvasRCNN``: detections of the original size, the same
    raw detections as detectron2's meta-architecture before post-processing."""
    cfg = load_config("tiny_benchmarking.py")
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    cfg.model._target_ = PaddedCanvasRCNN
    canvas = build_model(cfg).eval()
    canvas.load_state_dict(plain.state_dict())
    size = cfg.model.backbone.square_pad
    inputs = [{"image": torch.randint(0, 255, (3, size, size)).float(), "height": 60, "width": 80}]
    with torch.no_grad():
        raw = plain.inference(inputs, do_postprocess=False)[0]
        (out,) = canvas(inputs)
    assert out["instances"].image_size == (60, 80)
    assert out["instances"].pred_masks.shape[1:] == (60, 80)
    expected = rescale_from_canvas(raw, 60, 80)
    assert torch.equal(out["instances"].pred_boxes.tensor, expected.pred_boxes.tensor)
