"""The MAE-pretrained decoder that turns the encoder's partial output back into a full stride-16 map.

Encoder output -> ``embed`` (D -> E); every position the encoder did not see is filled, then the
decoder position table is added and N pre-trained blocks and the decoder norm run over the full grid.
Two fills, both from the reference code:

- ``mask_token``: MAE's learnable mask token (the paper, and the reference code's first release);
- ``convstem``: the ConvStem's stride-16 features at those positions through a Linear D -> E (the
  reference code's later release; it has no mask token). That Linear is trained from scratch; ``fill_init``
  chooses its start: ``torch`` (PyTorch's default) or ``xavier`` (xavier-uniform weights, zero bias, as
  the reference code).

MAE's ViT-B/L decoders are 512 wide with 16 heads and 8 blocks, so at most 8 can be pre-trained.

Shapes: B batch, N = h*w tokens, K kept tokens, D encoder width, E decoder width.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn

from .pos_embed import frozen_table, resize_table
from .vit_blocks import MAE_LAYER_NORM_EPS, make_blocks, vit_norm

DecoderFill = Literal["mask_token", "convstem"]
FillInit = Literal["torch", "xavier"]
FILLS: tuple[str, ...] = get_args(DecoderFill)
FILL_INITS: tuple[str, ...] = get_args(FillInit)
MAX_PRETRAINED_DECODERS = 8


class MAEDecoder(nn.Module):
    """``depth`` MAE decoder blocks over the full token grid."""

    def __init__(
        self,
        in_dim: int = 768,
        dim: int = 512,
        depth: int = 4,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        pos_grid: int = 50,
        fill: DecoderFill = "mask_token",
        drop_path_rate: float = 0.0,
        norm_eps: float = MAE_LAYER_NORM_EPS,
        fill_init: str = "torch",
    ) -> None:
        super().__init__()
        if not 1 <= depth <= MAX_PRETRAINED_DECODERS:
            raise ValueError(f"num_decoders must be in 1..{MAX_PRETRAINED_DECODERS} (MAE has 8), got {depth}")
        if fill not in FILLS:
            raise ValueError(f"decoder fill must be one of {FILLS}, got {fill!r}")
        if fill_init not in FILL_INITS:
            raise ValueError(f"decoder fill init must be one of {FILL_INITS}, got {fill_init!r}")
        self.fill = fill
        self.embed = nn.Linear(in_dim, dim)
        if fill == "mask_token":
            self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.normal_(self.mask_token, std=0.02)
        else:
            self.fill_proj = nn.Linear(in_dim, dim)
            if fill_init == "xavier":
                nn.init.xavier_uniform_(self.fill_proj.weight)
                nn.init.zeros_(self.fill_proj.bias)
        self.pos_embed = frozen_table(dim, pos_grid)
        self.blocks = make_blocks(dim, depth, num_heads, mlp_ratio, drop_path_rate, norm_eps)
        self.norm = vit_norm(dim, norm_eps)

    def forward(
        self,
        latent: torch.Tensor,
        ids_keep: torch.Tensor | None,
        hw: tuple[int, int],
        stem_tokens: torch.Tensor,
    ) -> torch.Tensor:
        """(B, K, D) encoded tokens at ``ids_keep`` -> (B, N, E); ``stem_tokens`` is (B, N, D)."""
        x = self.embed(latent)  # (B, K, E)
        if ids_keep is not None:
            full = self._filler(stem_tokens).to(x.dtype)  # (B, N, E)
            x = full.scatter(1, ids_keep[..., None].expand(-1, -1, x.shape[-1]), x)
        x = x + resize_table(self.pos_embed, hw)  # (B, N, E)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def _filler(self, stem_tokens: torch.Tensor) -> torch.Tensor:
        if self.fill == "mask_token":
            return self.mask_token.expand(stem_tokens.shape[0], stem_tokens.shape[1], -1)
        return self.fill_proj(stem_tokens)
