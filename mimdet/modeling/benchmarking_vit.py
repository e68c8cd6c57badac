"""The Benchmarking baseline (Li et al., arXiv 2111.11429) that MIMDet compares against (Table 1, Fig. 2).

A plain ViT with the pre-trained 16x16 patchify stem at 1024x1024: blocks in four groups of three (two
blocks of 16x16-window attention, then one global), decomposed relative position biases, a learnable
absolute position table stored for the 64x64 grid, and the outputs of blocks 3/6/9/12 adapted to strides
4/8/16/32 by transposed convs / identity / max-pool. The blocks, the patchify stem and the position
handling are detectron2's (``detectron2.modeling.backbone.vit``).

Shapes: B batch, h x w token grid, D width.
"""

from __future__ import annotations

import torch
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from detectron2.modeling.backbone.utils import PatchEmbed, get_abs_pos
from detectron2.modeling.backbone.vit import Block
from torch import nn

from .vit_blocks import drop_path_rates, vit_norm
from .vit_pyramid import Norm, upsampling_adaptor

OUT_FEATURES = ("c2", "c3", "c4", "c5")
STRIDES = (4, 8, 16, 32)
PATCH = 16


@BACKBONE_REGISTRY.register()
class BenchmarkingViT(Backbone):
    """ViT with window/global blocks and Li et al.'s multi-scale adaptors (C2..C5 for FPN)."""

    # Where an official MAE checkpoint's tensors go (see checkpoint.py): the patchify stem is kept.
    MAE_KEY_MAP = (("patch_embed", "patch_embed"), ("pos_embed", "pos_embed"), ("blocks", "blocks"))

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
        norm: Norm = "SyncBN",
    ) -> None:
        super().__init__()
        grid = img_size // PATCH
        self.patch_embed = PatchEmbed((PATCH, PATCH), (PATCH, PATCH), in_chans=3, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))  # slot 0: MAE's cls
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=True,
                drop_path=rate,
                norm_layer=vit_norm,
                use_rel_pos=True,
                window_size=window_size if (index + 1) % global_every else 0,
                input_size=(grid, grid),
            )
            for index, rate in enumerate(drop_path_rates(depth, drop_path_rate))
        )
        self.tap_blocks = tuple(depth * k // 4 - 1 for k in (1, 2, 3, 4))  # blocks 3/6/9/12 of 12
        self.adaptors = nn.ModuleList(upsampling_adaptor(s, embed_dim, norm) for s in STRIDES)
        self._out_features = list(OUT_FEATURES)
        self._out_feature_channels = dict.fromkeys(OUT_FEATURES, embed_dim)
        self._out_feature_strides = dict(zip(OUT_FEATURES, STRIDES, strict=True))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.patch_embed(x)  # (B, h, w, D)
        x = x + get_abs_pos(self.pos_embed, True, (x.shape[1], x.shape[2]))
        taps = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.tap_blocks:
                taps.append(x.permute(0, 3, 1, 2))  # (B, D, h, w)
        return {name: adaptor(t) for name, adaptor, t in zip(OUT_FEATURES, self.adaptors, taps, strict=True)}
