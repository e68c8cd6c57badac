"""The MAE-pretrained ViT encoder, fed either a random subset of tokens or 7x7 windows (Table 4).

``forward`` adds the position table (resized to this batch's grid), keeps the sampled tokens (or cuts the
grid into windows), runs the blocks and the final norm. It can also hand back the full-grid output of
chosen blocks, which Table 4's row 4 feeds to FPN in place of the ConvStem maps.

Shapes: B batch, N = h*w tokens, K kept tokens, D width.
"""

from __future__ import annotations

import torch
from torch import nn

from .pos_embed import frozen_table, resize_table
from .token_sampler import gather_tokens
from .vit_blocks import MAE_LAYER_NORM_EPS, from_windows, make_blocks, to_windows, vit_norm


class PartialTokenEncoder(nn.Module):
    """ViT blocks + norm over kept tokens; ``window_size > 0`` switches to window attention instead."""

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        pos_grid: int = 50,
        drop_path_rate: float = 0.1,
        window_size: int = 0,
        norm_eps: float = MAE_LAYER_NORM_EPS,
    ) -> None:
        super().__init__()
        self.pos_embed = frozen_table(embed_dim, pos_grid)
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate, norm_eps)
        self.norm = vit_norm(embed_dim, norm_eps)
        self.window_size = window_size

    def forward(
        self,
        tokens: torch.Tensor,
        hw: tuple[int, int],
        ids_keep: torch.Tensor | None = None,
        taps: tuple[int, ...] = (),
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(B, N, D) -> (B, K, D) after the norm, and {block index: (B, N, D)} for each tapped block."""
        x = tokens + resize_table(self.pos_embed, hw)  # (B, N, D)
        if ids_keep is not None:
            if taps:
                raise ValueError("intermediate features need the full grid: tap blocks only without sampling")
            x = gather_tokens(x, ids_keep)  # (B, K, D)
        pad_hw = hw
        if self.window_size:
            x, pad_hw = to_windows(x, hw, self.window_size)  # (B * windows, S*S, D)
        tapped = {}
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in taps:
                tapped[index] = self._full_grid(x, hw, pad_hw)
        return self.norm(self._full_grid(x, hw, pad_hw)), tapped

    def _full_grid(self, x: torch.Tensor, hw: tuple[int, int], pad_hw: tuple[int, int]) -> torch.Tensor:
        return from_windows(x, hw, pad_hw, self.window_size) if self.window_size else x
