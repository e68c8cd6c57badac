"""The configs carry the paper's recipe, with derived numbers that follow the overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detectron2.config import instantiate
from detectron2.solver import LRMultiplier

from mimdet.record.from_run import variant_of
from mimdet.record.variants import PAPER_VARIANTS
from mimdet.run.config import build_model, load_config, resolve_config_path
from mimdet.run.resolve import resolve_run
from mimdet.run.solver import lr_factor
from mimdet.train import register_datasets
from tests.micro import micro_dataset, micro_overrides


def test_vit_b_schedule_is_36_epochs_at_batch_64() -> None:
    cfg = load_config("mimdet_vit_base.py")
    assert cfg.train.max_iter == 67_500
    assert cfg.dataloader.train.total_batch_size == 64 and cfg.optimizer.lr == 8e-5
    halved = resolve_run("mimdet_vit_base.py", ["dataloader.train.total_batch_size=32"]).cfg
    assert halved.train.max_iter == 135_000  # same epochs, twice the iterations


def test_lr_steps_fall_at_epochs_27_and_33() -> None:
    cfg = load_config("mimdet_vit_base.py")
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = LRMultiplier(optimizer, instantiate(cfg.lr_multiplier), cfg.train.max_iter)
    lrs = []
    for _ in range(cfg.train.max_iter):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.001)  # linear warm-up from 0.1 %
    assert lrs[2000] == pytest.approx(1.0)
    drops = [i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1] * 0.5]
    assert drops == [50_625, 61_875]
    assert lrs[-1] == pytest.approx(0.01)


def test_model_overrides_reach_the_backbone() -> None:
    cfg = resolve_run(
        "tiny_mimdet.py",
        ["model.backbone.bottom_up.train_sample_ratio=0.25", "model.backbone.bottom_up.num_decoders=2"],
    ).cfg
    backbone = build_model(cfg).backbone.bottom_up
    assert backbone.train_sample_ratio == 0.25 and len(backbone.decoder.blocks) == 2


def test_learning_rate_groups_follow_the_paper() -> None:
    cfg = load_config("tiny_mimdet.py")
    model = build_model(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    by_param = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            by_param[id(param)] = (group["lr"], group["weight_decay"])
    base = cfg.optimizer.lr
    names = dict(model.named_parameters())
    expect = {
        "backbone.bottom_up.stem.stages.0.0.weight": (base, 0.1),
        "backbone.bottom_up.encoder.blocks.0.attn.qkv.weight": (base * 0.5, 0.1),
        "backbone.bottom_up.encoder.blocks.0.attn.qkv.bias": (base * 0.5, 0.0),
        "backbone.bottom_up.encoder.norm.weight": (base * 0.5, 0.0),
        "backbone.bottom_up.decoder.blocks.0.mlp.fc1.weight": (base * 2, 0.1),
        "backbone.bottom_up.decoder.mask_token": (base * 2, 0.0),
        "backbone.fpn_lateral2.weight": (base * 2, 0.1),
        "roi_heads.box_predictor.cls_score.weight": (base * 2, 0.1),
    }
    for name, (lr, weight_decay) in expect.items():
        assert by_param[id(names[name])] == (pytest.approx(lr), weight_decay), name
    assert id(names["backbone.bottom_up.encoder.pos_embed"]) not in by_param  # frozen: not optimised


@pytest.mark.parametrize(
    ("name", "factor"),
    [
        ("backbone.bottom_up.stem.stages.3.4.bias", 1.0),
        ("backbone.bottom_up.blocks.11.mlp.fc2.weight", 0.5),
        ("backbone.bottom_up.patch_embed.proj.weight", 0.5),
        ("backbone.bottom_up.adaptors.0.0.weight", 2.0),
        ("backbone.bottom_up.global_rel_pos.bias_table", 0.5),
        ("proposal_generator.rpn_head.conv.conv0.weight", 2.0),
    ],
)
def test_lr_factor(name: str, factor: float) -> None:
    assert lr_factor(name) == factor


def test_every_variant_config_loads_and_names_a_real_file() -> None:
    for variant in PAPER_VARIANTS:
        assert resolve_config_path(variant.config).is_file()
    with pytest.raises(FileNotFoundError, match="config file not found: nope.py"):
        resolve_config_path("nope.py")


def test_the_coco_recipe_crops_images_with_polygon_masks(tmp_path: Path) -> None:
    """The paper recipe's random crop cuts polygon masks (with shapely, through fvcore); the tiny configs
    never crop, so only this test would see that path break."""
    data = micro_dataset(tmp_path)
    overrides = [o for o in micro_overrides(data) if not o.startswith("dataloader.train.total_batch_size")]
    cfg = resolve_run("mimdet_vit_base.py", [*overrides, "dataloader.train.total_batch_size=1"]).cfg
    cfg.dataloader.train.mapper.augmentations[1].prob = 1.0  # always take the resize-and-crop branch
    register_datasets(cfg)
    (example,) = next(iter(instantiate(cfg.dataloader.train)))
    height, width = example["image"].shape[1:]
    assert 480 <= min(height, width) <= 800 and max(height, width) <= 1333
    instances = example["instances"]
    assert len(instances) > 0 and instances.gt_masks.polygons  # cropped polygons, not bitmasks


@pytest.mark.parametrize("as_text", [False, True], ids=["class", "dotted-path"])
def test_the_record_variant_names_the_benchmarking_backbone(as_text: bool) -> None:
    """A loaded config holds the backbone class itself; one saved to YAML holds its dotted path."""
    cfg = load_config("experiments/tiny_benchmarking.py")
    if as_text:
        cfg.model.backbone.bottom_up._target_ = "mimdet.modeling.benchmarking_vit.BenchmarkingViT"
    variant = variant_of(cfg)
    assert (variant.model, variant.num_decoders, variant.fpn_inputs) == ("benchmarking", 0, "vit")
    assert variant_of(load_config("experiments/tiny_mimdet.py")).model == "mimdet"


@pytest.mark.parametrize(
    ("config", "overrides", "flavor"),
    [
        ("mimdet_vit_base.py", [], "paper"),
        ("mimdet_vit_base_reference.py", [], "reference"),
        ("mimdet_vit_large_reference.py", [], "reference"),
        ("benchmarking_vit_base.py", [], "paper"),
        ("benchmarking_vit_base_reference.py", [], "reference"),
        ("tiny_mimdet.py", [], "paper"),
        ("mimdet_vit_base.py", ["model.backbone.bottom_up.c5_pool=max"], "custom"),
        ("mimdet_vit_base_reference.py", ["model.backbone.bottom_up.layer_norm_eps=1e-6"], "custom"),
    ],
)
def test_the_record_variant_names_the_flavor(config: str, overrides: list[str], flavor: str) -> None:
    """Tables must not mix the paper's model with the released models' code: the record says which."""
    assert variant_of(resolve_run(config, overrides).cfg).flavor == flavor


@pytest.mark.parametrize("tiny_config", ["tiny_mimdet.py", "tiny_benchmarking.py"])
@pytest.mark.parametrize("pooler", ["box_pooler", "mask_pooler"])
def test_tiny_boxes_pool_from_the_levels_of_paper_boxes_four_times_their_size(
    tiny_config: str, pooler: str
) -> None:
    """The tiny recipe scales images and anchors down 4×; a box's FPN level must follow, or every tiny box
    pools from P2, the ConvStem's map, and the ViT path barely reaches the heads (docs/tiny_recipe.md)."""
    from detectron2.modeling.poolers import assign_boxes_to_levels
    from detectron2.structures import Boxes

    def levels(config: str, sides: list[float]) -> list[int]:
        canonical = load_config(config).model.roi_heads[pooler].get("canonical_box_size", 224)  # ROIPooler's
        boxes = Boxes(torch.tensor([[0.0, 0.0, side, side] for side in sides]))
        return (assign_boxes_to_levels([boxes], 2, 5, canonical, 4) + 2).tolist()

    tiny_sides = [10.0, 30.0, 60.0, 120.0, 200.0]
    assert levels(tiny_config, tiny_sides) == levels("mimdet_vit_base.py", [4 * s for s in tiny_sides])
    assert levels(tiny_config, tiny_sides) == [2, 3, 4, 5, 5]
