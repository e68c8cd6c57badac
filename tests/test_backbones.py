"""detectron2's Backbone contract for every variant, sampling behaviour, and whole tiny detectors."""

from __future__ import annotations

import pytest
import torch
from detectron2.utils.events import EventStorage

from mimdet.data.random_batch import random_inputs
from mimdet.modeling import BenchmarkingViT, MIMDetBackbone
from mimdet.modeling.flavors import FLAVORS
from mimdet.run.config import build_model, load_config

TINY = dict(
    embed_dim=32, depth=4, num_heads=2, pos_grid=6, drop_path_rate=0.0, decoder_dim=16, decoder_heads=2
)
SIZES = [(64, 64), (96, 160), (160, 64), (128, 96)]

VARIANTS = {
    "random r=0.5, 4 dec": dict(train_sample_ratio=0.5, num_decoders=4),
    "random r=0.125, 1 dec": dict(train_sample_ratio=0.125, test_sample_ratio=0.25, num_decoders=1),
    "convstem fill": dict(train_sample_ratio=0.5, num_decoders=2, decoder_fill="convstem"),
    "all tokens, no decoder": dict(train_sample_ratio=1.0, num_decoders=0),
    "all tokens, 2 dec, max pool": dict(train_sample_ratio=1.0, num_decoders=2, c5_pool="max"),
    "reference flavor": dict(train_sample_ratio=0.5, num_decoders=2, **FLAVORS["reference"].mimdet),
    "table4 row3 windows": dict(sampling="window", window_size=3, train_sample_ratio=1.0, num_decoders=0),
    "table4 row4 windows + vit fpn": dict(
        sampling="window", window_size=3, train_sample_ratio=1.0, num_decoders=0, fpn_inputs="vit"
    ),
}


def _check_contract(backbone: torch.nn.Module, hw: tuple[int, int]) -> None:
    outputs = backbone(torch.randn(2, 3, *hw))
    shapes = backbone.output_shape()
    assert list(outputs) == list(shapes) == ["c2", "c3", "c4", "c5"]
    for name, spec in shapes.items():
        assert outputs[name].shape == (2, spec.channels, hw[0] // spec.stride, hw[1] // spec.stride), name


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_mimdet_backbone_outputs_match_output_shape(variant: str, hw: tuple[int, int]) -> None:
    backbone = MIMDetBackbone(**TINY, **VARIANTS[variant], norm="BN")
    _check_contract(backbone.train(), hw)
    _check_contract(backbone.eval(), hw)


@pytest.mark.parametrize("hw", [(64, 64), (128, 96)])
def test_benchmarking_backbone_outputs_match_output_shape(hw: tuple[int, int]) -> None:
    backbone = BenchmarkingViT(
        img_size=64, embed_dim=32, depth=4, num_heads=2, window_size=2, global_every=2, norm="BN"
    )
    _check_contract(backbone.train(), hw)


@pytest.mark.parametrize("hw", [(64, 64), (64, 48), (48, 64)])
def test_reference_benchmarking_backbone_outputs_match_output_shape(hw: tuple[int, int]) -> None:
    """Shared relative-position tables cover grids up to the stored one (the reference code: exactly it)."""
    backbone = BenchmarkingViT(
        img_size=64,
        embed_dim=32,
        depth=4,
        num_heads=2,
        window_size=2,
        global_every=2,
        **FLAVORS["reference"].benchmarking,
    )
    _check_contract(backbone.train(), hw)


def test_c4_channels_follow_the_decoder() -> None:
    with_decoder = MIMDetBackbone(**TINY, num_decoders=2).output_shape()
    without = MIMDetBackbone(**TINY, train_sample_ratio=1.0, num_decoders=0).output_shape()
    assert with_decoder["c4"].channels == 16 and without["c4"].channels == 32
    assert with_decoder["c2"].channels == 8 and with_decoder["c3"].channels == 16  # D/4, D/2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(train_sample_ratio=0.5, num_decoders=0), "needs num_decoders"),
        (dict(train_sample_ratio=1.0, test_sample_ratio=0.5, num_decoders=0), "needs num_decoders"),
        (dict(train_sample_ratio=0.0), "train_sample_ratio 0.0 is not a number in"),
        (dict(test_sample_ratio=1.5), "test_sample_ratio 1.5 is not a number in"),
        (dict(num_decoders=9), "num_decoders 9 is not a decoder count"),
        (dict(sampling="window", num_decoders=2, train_sample_ratio=1.0), "sampling='window'"),
        (dict(sampling="grid"), "sampling must be one of"),
        (dict(decoder_fill="zeros"), "decoder fill must be one of"),
        (dict(c5_pool="sum"), "c5_pool must be one of"),
        (dict(attention=("flash", "fast")), "attention back-ends must be"),
        (dict(attention=()), "attention back-ends must be"),
        (dict(canvas_multiple=100), "canvas_multiple must be 0"),
        (dict(stem_norm="batchnorm"), "stem_norm must be one of"),
        (dict(padding_order="raster"), "padding_order must be one of"),
        (dict(decoder_fill="convstem", decoder_fill_init="zeros"), "decoder fill init must be one of"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MIMDetBackbone(**{**TINY, **kwargs})


def test_evaluation_at_a_ratio_below_one_is_reproducible() -> None:
    torch.manual_seed(0)
    backbone = MIMDetBackbone(**TINY, train_sample_ratio=0.25, test_sample_ratio=0.5, num_decoders=1).eval()
    images = torch.randn(2, 3, 96, 64)
    first = backbone(images)["c4"]
    second = backbone(images)["c4"]
    assert not torch.equal(first, second)  # the generator advances between batches
    backbone.eval()  # entering eval mode again restarts the same draws
    assert torch.equal(backbone(images)["c4"], first)
    backbone.eval_seed = 1
    backbone.eval()
    assert not torch.equal(backbone(images)["c4"], first)


def test_ratio_follows_train_and_eval_mode() -> None:
    backbone = MIMDetBackbone(**TINY, train_sample_ratio=0.25, test_sample_ratio=1.0, num_decoders=1)
    images = torch.randn(1, 3, 64, 64)  # 16 tokens
    assert backbone.train().sample(images).shape == (1, 4)
    assert backbone.eval().sample(images) is None


def test_only_real_tokens_are_sampled_in_a_padded_batch() -> None:
    backbone = MIMDetBackbone(**TINY, train_sample_ratio=0.5, num_decoders=1).train()
    images = torch.randn(2, 3, 64, 128)
    images[1, :, :, 64:] = 0  # image 1 is half padding: exactly the kept half must be its real tokens
    ids = backbone.sample(images)
    real = (torch.arange(32).reshape(4, 8)[:, :4]).flatten()
    assert torch.equal(ids[1], real)


@pytest.mark.parametrize("config", ["tiny_mimdet.py", "tiny_benchmarking.py"])
def test_tiny_detector_trains_and_infers_on_non_square_images(config: str) -> None:
    cfg = load_config(config)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    inputs = random_inputs([(192, 256), (256, 160)], num_classes=cfg.model.roi_heads.num_classes)
    with EventStorage(0):
        losses = model(inputs)
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    sum(losses.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": x["image"], "height": 100, "width": 80} for x in inputs])
    assert [tuple(o["instances"].image_size) for o in outputs] == [(100, 80), (100, 80)]


def _kept_positions(backbone: MIMDetBackbone, images: torch.Tensor) -> list[set[tuple[int, int]]]:
    """The (row, column) of every token the encoder received, per image (from its ids_keep)."""
    seen: list[torch.Tensor] = []
    handle = backbone.encoder.register_forward_pre_hook(lambda _m, args: seen.append(args[2]))
    outputs = backbone(images)
    handle.remove()
    grid_w = outputs["c4"].shape[-1]
    return [{(int(i) // grid_w, int(i) % grid_w) for i in ids} for ids in seen[0]]


def test_the_canvas_keeps_the_same_tokens_and_pads_every_output() -> None:
    """A 96 x 160 batch on a 128 px canvas: outputs at 128 x 256 px, the kept count and positions as the
    batch's own grid gives them (seeded evaluation draws the same noise), image 1's padding never kept."""
    settings = dict(**TINY, train_sample_ratio=0.25, test_sample_ratio=0.5, num_decoders=1, norm="BN")
    torch.manual_seed(0)
    plain = MIMDetBackbone(**settings).eval()
    canvas = MIMDetBackbone(**settings, canvas_multiple=128).eval()
    canvas.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 96, 160)
    images[1, :, :, 64:] = 0  # image 1: 6 x 4 real tokens of the 6 x 10 grid
    assert _kept_positions(canvas, images) == _kept_positions(plain, images)
    kept = _kept_positions(canvas.eval(), images)
    assert [len(k) for k in kept] == [30, 30]  # int(0.5 * 6 * 10), counted on the batch's own grid
    real = {(row, column) for row in range(6) for column in range(4)}
    assert real <= kept[1] and all(row < 6 and column < 10 for row, column in kept[1])  # never the border
    outputs = canvas(images)
    for name, stride in zip(("c2", "c3", "c4", "c5"), (4, 8, 16, 32), strict=True):
        assert outputs[name].shape[-2:] == (128 // stride, 256 // stride), name


def test_the_canvas_makes_few_shapes_of_many() -> None:
    backbone = MIMDetBackbone(**TINY, train_sample_ratio=0.5, num_decoders=1, canvas_multiple=128, norm="BN")
    shapes = {
        tuple(backbone(torch.randn(1, 3, h, w))["c2"].shape[-2:]) for h, w in [(96, 96), (128, 96), (64, 128)]
    }
    assert shapes == {(32, 32)}


def test_detector_trains_on_a_canvas() -> None:
    cfg = load_config("tiny_mimdet.py")
    cfg.model.backbone.bottom_up.canvas_multiple = 256
    model = build_model(cfg).train()
    inputs = random_inputs([(192, 256), (256, 160)], num_classes=cfg.model.roi_heads.num_classes)
    with EventStorage(0):
        losses = model(inputs)
    assert all(torch.isfinite(loss) for loss in losses.values())


@pytest.mark.parametrize("backends", [("math",), ("flash", "efficient", "math")])
def test_attention_back_ends_compute_the_same_function(backends: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    reference = MIMDetBackbone(**TINY, train_sample_ratio=1.0, num_decoders=1, norm="BN").eval()
    chosen = MIMDetBackbone(
        **TINY, train_sample_ratio=1.0, num_decoders=1, norm="BN", attention=backends
    ).eval()
    chosen.load_state_dict(reference.state_dict())
    images = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(chosen(images)["c4"], reference(images)["c4"], rtol=1e-5, atol=1e-5)
