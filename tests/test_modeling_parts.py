"""ConvStem, position tables, token sampling, encoder and decoder, each alone on tiny widths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import Block

from mimdet.modeling import ConvStem, MAEDecoder, PartialTokenEncoder
from mimdet.modeling.pos_embed import resize_table, sincos_2d_table
from mimdet.modeling.token_sampler import num_kept, padding_free_tokens, sample_tokens
from mimdet.modeling.vit_blocks import make_blocks

RATIOS = (0.125, 0.25, 0.5, 0.75, 1.0)


def test_conv_stem_vit_b_has_the_papers_4_1m_parameters() -> None:
    """Architecture 1 for D=768: 2,592 + 165,888 + 663,552 + 2,654,208 conv weights, 2*(96+192+384+768)
    norm weights and biases, and the 1x1 conv's 589,824 + 768 = 4,079,712."""
    with torch.device("meta"):
        stem = ConvStem(768)
    assert sum(p.numel() for p in stem.parameters()) == 4_079_712
    assert stem.channels == {2: 96, 4: 192, 8: 384, 16: 768}


@pytest.mark.parametrize("hw", [(64, 64), (96, 160), (160, 96), (100, 70)])
def test_conv_stem_strides_on_non_square_images(hw: tuple[int, int]) -> None:
    stem = ConvStem(32)
    feats = stem(torch.randn(1, 3, *hw))
    for stride, channels in stem.channels.items():
        expected = (1, channels, -(-hw[0] // stride), -(-hw[1] // stride))
        assert tuple(feats[stride].shape) == expected


def test_conv_stem_receptive_field_is_31_pixels() -> None:
    stem = ConvStem(16).double()
    image = torch.randn(1, 3, 96, 96, dtype=torch.double, requires_grad=True)
    stem(image)[16][0, :, 3, 3].sum().backward()
    rows = image.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = image.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 31
    assert cols.max() - cols.min() + 1 == 31


@pytest.mark.parametrize("dim", [64, 512, 768])
def test_one_block_has_12d2_plus_13d_parameters(dim: int) -> None:
    with torch.device("meta"):
        block = make_blocks(dim, 1, 8, 4.0, 0.0)[0]
    assert sum(p.numel() for p in block.parameters()) == 12 * dim * dim + 13 * dim


def test_blocks_have_maes_state_dict_names() -> None:
    names = set(make_blocks(64, 1, 4, 4.0, 0.0)[0].state_dict())
    mae_names = {
        f"{m}.{p}"
        for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
        for p in ("weight", "bias")
    }
    assert names == mae_names


def _mae_numpy_table(dim: int, grid: int) -> np.ndarray:
    """MAE's util/pos_embed.py, rewritten here as the reference the torch version must equal."""

    def one_d(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    gh = np.arange(grid, dtype=np.float32)
    mesh = np.stack(np.meshgrid(gh, gh), axis=0)  # w goes first
    emb = np.concatenate([one_d(dim // 2, mesh[0]), one_d(dim // 2, mesh[1])], axis=1)
    return np.concatenate([np.zeros([1, dim]), emb], axis=0)


def test_sincos_table_equals_maes() -> None:
    np.testing.assert_allclose(sincos_2d_table(64, 14).numpy(), _mae_numpy_table(64, 14), atol=1e-6)


@pytest.mark.parametrize("hw", [(14, 14), (10, 17), (25, 9)])
def test_position_table_resizes_to_any_grid(hw: tuple[int, int]) -> None:
    table = sincos_2d_table(32, 14)[None]
    resized = resize_table(table, hw)
    assert resized.shape == (1, hw[0] * hw[1], 32)
    if hw == (14, 14):
        assert torch.equal(resized, table[:, 1:])


@pytest.mark.parametrize("ratio", RATIOS)
def test_sampling_keeps_the_ratio_of_the_padded_grid_real_tokens_first(ratio: float) -> None:
    valid = torch.ones(3, 10, 12, dtype=torch.bool)
    valid[1, :, 9:] = False  # image 1 is narrower: 30 padded tokens
    valid[2, 4:, :] = False  # image 2 is shorter: 72 padded tokens
    valid = valid.flatten(1)
    ids = sample_tokens(valid, ratio, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (3, num_kept(120, ratio)) == (3, max(1, int(120 * ratio)))
    for row, keep in zip(ids, valid, strict=True):
        assert row.unique().numel() == row.numel()
        real = int(keep.sum())
        assert int(keep[row].sum()) == min(real, row.numel())  # padding only once the real ones run out
        assert torch.equal(row, row.sort().values)


def test_sampling_is_random_per_image_and_seedable() -> None:
    valid = torch.ones(4, 64, dtype=torch.bool)
    first = sample_tokens(valid, 0.25, generator=torch.Generator().manual_seed(7))
    again = sample_tokens(valid, 0.25, generator=torch.Generator().manual_seed(7))
    other = sample_tokens(valid, 0.25, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert len({tuple(row.tolist()) for row in first}) == 4


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_sampling_rejects_ratios_outside_0_1(ratio: float) -> None:
    with pytest.raises(ValueError, match="sample ratio"):
        num_kept(10, ratio)


def test_padding_is_recognised_from_zero_patches() -> None:
    images = torch.randn(2, 3, 32, 48)
    images[1, :, :, 32:] = 0  # detectron2 pads normalised images with zeros
    valid = padding_free_tokens(images)
    assert valid.shape == (2, 6)
    assert valid[0].all() and valid[1].tolist() == [True, True, False, True, True, False]


def test_encoder_runs_on_kept_tokens_and_taps_full_grid_blocks() -> None:
    encoder = PartialTokenEncoder(32, 3, 4, pos_grid=8, drop_path_rate=0.0)
    tokens = torch.randn(2, 6 * 10, 32)
    ids = sample_tokens(torch.ones(2, 60, dtype=torch.bool), 0.5)
    out, tapped = encoder(tokens, (6, 10), ids)
    assert out.shape == (2, 30, 32) and tapped == {}
    full, tapped = encoder(tokens, (6, 10), None, taps=(0, 1))
    assert full.shape == (2, 60, 32) and set(tapped) == {0, 1} and tapped[0].shape == (2, 60, 32)


def test_window_encoder_attends_only_within_windows() -> None:
    encoder = PartialTokenEncoder(16, 2, 2, pos_grid=8, drop_path_rate=0.0, window_size=3).eval()
    tokens = torch.randn(1, 6 * 6, 16)
    base, _ = encoder(tokens, (6, 6))
    changed = tokens.clone().reshape(1, 6, 6, 16)
    changed[0, 5, 5] += 1.0  # the bottom-right window only
    out, _ = encoder(changed.flatten(1, 2), (6, 6))
    diff = (out - base).abs().sum(-1).reshape(6, 6) > 0
    assert diff[3:, 3:].all() and not diff[:3].any() and not diff[:, :3].any()


@pytest.mark.parametrize("fill", ["mask_token", "convstem"])
def test_decoder_restores_the_full_grid(fill: str) -> None:
    decoder = MAEDecoder(32, 16, depth=2, num_heads=2, pos_grid=8, fill=fill)
    stem_tokens = torch.randn(2, 35, 32)
    ids = sample_tokens(torch.ones(2, 35, dtype=torch.bool), 0.25)
    out = decoder(torch.randn(2, ids.shape[1], 32), ids, (5, 7), stem_tokens)
    assert out.shape == (2, 35, 16)
    assert hasattr(decoder, "mask_token") == (fill == "mask_token")


def test_reference_fill_projection_starts_xavier_uniform_with_zero_bias() -> None:
    torch.manual_seed(0)
    decoder = MAEDecoder(768, 512, depth=1, num_heads=16, pos_grid=4, fill="convstem", fill_init="xavier")
    bound = (6 / (768 + 512)) ** 0.5
    weight = decoder.fill_proj.weight
    assert not decoder.fill_proj.bias.any() and weight.abs().max() <= bound
    assert weight.abs().max() > 0.99 * bound  # PyTorch's default bound is 1/sqrt(768), 2.5x smaller
    norms = [m for m in decoder.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert {m.eps for m in norms} == {1e-6}


def test_encoder_and_decoder_norms_take_the_eps_switch() -> None:
    encoder = PartialTokenEncoder(32, 2, 2, pos_grid=4, norm_eps=1e-5)
    decoder = MAEDecoder(32, 16, depth=1, num_heads=2, pos_grid=4, norm_eps=1e-5)
    norms = [m for part in (encoder, decoder) for m in part.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 2 + 1 + 2 + 1 and {m.eps for m in norms} == {1e-5}


@pytest.mark.parametrize("depth", [0, 9])
def test_decoder_depth_outside_1_8_is_an_error(depth: int) -> None:
    with pytest.raises(ValueError, match="num_decoders"):
        MAEDecoder(32, 16, depth=depth, num_heads=2, pos_grid=8)


def test_timm_block_is_the_class_the_adapter_builds() -> None:
    assert isinstance(make_blocks(32, 1, 2, 4.0, 0.0)[0], Block)
