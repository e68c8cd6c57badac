"""The Benchmarking baseline (Li et al., arXiv 2111.11429) that MIMDet compares against (Table 1, Fig. 2).

A plain ViT with the pre-trained 16x16 patchify stem at 1024x1024: blocks in four groups of three (two
blocks of 16x16-window attention, then one global), relative position biases, a learnable absolute
position table stored for the 64x64 grid, and the outputs of blocks 3/6/9/12 adapted to strides
4/8/16/32 by transposed convs / identity / max-pool. The patchify stem and the absolute position handling
are detectron2's (``detectron2.modeling.backbone.vit``).

Two switches separate the reference code's model from detectron2's ViT (``mimdet.modeling.flavors``):

- ``rel_pos``: ``decomposed`` gives every block detectron2's own ``rel_pos_h``/``rel_pos_w`` tables (and
  detectron2's blocks); ``shared`` gives all windowed blocks one table and all global blocks another
  (``SharedRelPosBias``, timm's blocks), as the reference code.
- ``pos_cls_slot``: whether the position table keeps MAE's class-token row (``1 + G*G`` rows) or not
  (``G*G``, as the reference code).

Two more set how a training from MAE weights starts:

- ``pos_init``: ``mae`` starts the (learnable) position table from MAE's, resized to the grid;
  ``sincos`` from a fixed 2-D sin-cos table with the row coordinate in the first half, which MAE's
  table does not replace (the reference code overwrites MAE's table with its own after loading).
- ``adaptor_init``: the transposed convs of the adaptors from PyTorch's default (``torch``) or
  lecun-normal with zero bias (``lecun``, the reference code); see ``vit_pyramid``.

The adaptors' norm is ``norm`` (the FPN's by default; the reference code uses GroupNorm(32), ``"GN"``).

Shapes: B batch, h x w token grid, D width, S window side.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, get_args

import torch
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.utils import PatchEmbed, get_abs_pos
from detectron2.modeling.backbone.vit import Block
from torch import nn

from .checkpoint import KeyMap
from .pos_embed import sincos_2d_table
from .rel_pos_bias import SharedRelPosBias
from .vit_blocks import MAE_LAYER_NORM_EPS, drop_path_rates, from_windows, make_blocks, to_windows, vit_norm
from .vit_pyramid import AdaptorInit, Norm, upsampling_adaptor

OUT_FEATURES = ("c2", "c3", "c4", "c5")
STRIDES = (4, 8, 16, 32)
PATCH = 16
RelPos = Literal["decomposed", "shared"]
REL_POS: tuple[str, ...] = get_args(RelPos)
PosInit = Literal["mae", "sincos"]
POS_INITS: tuple[str, ...] = get_args(PosInit)


@BACKBONE_REGISTRY.register()
class BenchmarkingViT(Backbone):
    """ViT with window/global blocks and Li et al.'s multi-scale adaptors (C2..C5 for FPN)."""

    # Where an official MAE checkpoint's tensors go (see checkpoint.py): the patchify stem is kept.
    # pos_init="sincos" narrows it, per instance, to leave the position table out.
    MAE_KEY_MAP: KeyMap = (("patch_embed", "patch_embed"), ("pos_embed", "pos_embed"), ("blocks", "blocks"))

    def __init__(
        self,
        *,
        img_size: int = 1024,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        window_size: int = 16,
        global_every: int = 3,
        rel_pos: RelPos = "decomposed",
        pos_cls_slot: bool = True,
        pos_init: PosInit = "mae",
        adaptor_init: AdaptorInit = "torch",
        layer_norm_eps: float = MAE_LAYER_NORM_EPS,
        norm: Norm = "SyncBN",
    ) -> None:
        super().__init__()
        if rel_pos not in REL_POS:
            raise ValueError(f"rel_pos must be one of {REL_POS}, got {rel_pos!r}")
        if pos_init not in POS_INITS:
            raise ValueError(f"pos_init must be one of {POS_INITS}, got {pos_init!r}")
        grid = img_size // PATCH
        self.patch_embed = PatchEmbed((PATCH, PATCH), (PATCH, PATCH), in_chans=3, embed_dim=embed_dim)
        self.pos_cls_slot = pos_cls_slot
        self.pos_embed = nn.Parameter(torch.zeros(1, int(pos_cls_slot) + grid * grid, embed_dim))
        if pos_init == "mae":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)  # until MAE's table replaces it
        else:
            self.MAE_KEY_MAP = tuple(pair for pair in self.MAE_KEY_MAP if pair[0] != "pos_embed")
            if self.pos_embed.device.type != "meta":
                table = sincos_2d_table(embed_dim, grid, cls_slot=pos_cls_slot, rows_first=True)
                self.pos_embed.data.copy_(table[None])
        # the window side of each block, 0 for a global one
        self.block_windows = tuple(window_size if (i + 1) % global_every else 0 for i in range(depth))
        self.shared_rel_pos = rel_pos == "shared"
        if self.shared_rel_pos:
            self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate, layer_norm_eps)
            self.windowed_rel_pos = SharedRelPosBias(window_size, num_heads)
            self.global_rel_pos = SharedRelPosBias(grid, num_heads)
        else:
            self.blocks = nn.ModuleList(
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=True,
                    drop_path=rate,
                    norm_layer=partial(vit_norm, eps=layer_norm_eps),
                    use_rel_pos=True,
                    window_size=window,
                    input_size=(grid, grid),
                )
                for window, rate in zip(
                    self.block_windows, drop_path_rates(depth, drop_path_rate), strict=True
                )
            )
        self.tap_blocks = tuple(depth * k // 4 - 1 for k in (1, 2, 3, 4))  # blocks 3/6/9/12 of 12
        self.adaptors = nn.ModuleList(upsampling_adaptor(s, embed_dim, norm, adaptor_init) for s in STRIDES)
        self._out_features = list(OUT_FEATURES)
        self._out_feature_channels = dict.fromkeys(OUT_FEATURES, embed_dim)
        self._out_feature_strides = dict(zip(OUT_FEATURES, STRIDES, strict=True))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.patch_embed(x)  # (B, h, w, D)
        hw = (x.shape[1], x.shape[2])
        x = x + get_abs_pos(self.pos_embed, self.pos_cls_slot, hw)
        biases = self._shared_biases(hw)
        taps = []
        for index, block in enumerate(self.blocks):
            window = self.block_windows[index]
            x = _biased_block(block, x, window, biases[window]) if biases else block(x)  # (B, h, w, D)
            if index in self.tap_blocks:
                taps.append(x.permute(0, 3, 1, 2))  # (B, D, h, w)
        return {name: adaptor(t) for name, adaptor, t in zip(OUT_FEATURES, self.adaptors, taps, strict=True)}

    def _shared_biases(self, hw: tuple[int, int]) -> dict[int, torch.Tensor]:
        """{window side (0: global): (heads, M, M) bias}, each table expanded once per forward; {} for
        detectron2's decomposed tables, which its blocks apply themselves."""
        if not self.shared_rel_pos:
            return {}
        side = self.windowed_rel_pos.side
        return {0: self.global_rel_pos(hw), side: self.windowed_rel_pos((side, side))}


def _biased_block(block: nn.Module, x: torch.Tensor, window: int, bias: torch.Tensor) -> torch.Tensor:
    """A timm block on (B, h, w, D) with an additive attention bias, within S x S windows if ``window``."""
    hw = (x.shape[1], x.shape[2])
    tokens = x.flatten(1, 2)  # (B, h*w, D)
    if not window:
        return block(tokens, attn_mask=bias).reshape(x.shape)
    windows, pad_hw = to_windows(tokens, hw, window)  # (B * windows, S*S, D)
    out = block(windows, attn_mask=bias)
    return from_windows(out, hw, pad_hw, window).reshape(x.shape)
