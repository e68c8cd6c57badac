"""Relative-position biases shared by every block of one attention kind (BEiT's scheme).

The reference code's Benchmarking ViT keeps one learnable table per attention kind, not one per block:
``(2S-1)^2`` rows x heads, for the windowed blocks (S = window side) and for the global ones (S = the token
grid side at the training size). A token pair at offset (dy, dx) adds ``table[(dy + S-1)(2S-1) + dx + S-1]``
to the attention logits of each head. ViT-B at 1024 px with 16x16 windows: 961 x 12 and 16,129 x 12.
(detectron2's ViT instead gives each block its own decomposed tables ``rel_pos_h``/``rel_pos_w``.)

Shapes: h x w token grid, M = h*w tokens, S table side, H heads.
"""

from __future__ import annotations

import torch
from torch import nn


class SharedRelPosBias(nn.Module):
    """One ``((2S-1)^2, H)`` table; ``forward`` turns it into the additive attention bias of a grid."""

    def __init__(self, side: int, num_heads: int) -> None:
        super().__init__()
        self.side = side
        self.bias_table = nn.Parameter(torch.zeros((2 * side - 1) ** 2, num_heads))

    def forward(self, hw: tuple[int, int]) -> torch.Tensor:
        """The (H, M, M) bias for an h x w grid with h, w <= S (offsets beyond the table have no row)."""
        if max(hw) > self.side:
            raise ValueError(
                f"a {hw[0]}x{hw[1]} token grid is larger than the {self.side}x{self.side} grid of a shared "
                "relative-position table: inputs must not exceed img_size (or use rel_pos='decomposed')"
            )
        device = self.bias_table.device
        rows, cols = torch.meshgrid(
            torch.arange(hw[0], device=device), torch.arange(hw[1], device=device), indexing="ij"
        )
        coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, M)
        offsets = coords[:, :, None] - coords[:, None, :] + self.side - 1  # (2, M, M), each in [0, 2S-2]
        index = offsets[0] * (2 * self.side - 1) + offsets[1]  # (M, M)
        return self.bias_table[index].permute(2, 0, 1)  # (H, M, M)
