"""MAE's fixed 2-D sin-cos position tables, stored for one grid and resized to any token grid.

The tables keep MAE's layout ``(1, 1 + G*G, C)``: slot 0 belongs to the class token that MIMDet does not
use, but keeping it makes MAE checkpoints load without surgery and reproduces the reference parameter
counts exactly. The tables are ``nn.Parameter`` with ``requires_grad=False`` (as in MAE): frozen, yet
part of the state dict and of the parameter count.

Shapes: G stored grid side, h x w target token grid, C channels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim): half sines, half cosines, MAE's frequency ladder."""
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = positions.reshape(-1).double()[:, None] * omega[None, :]  # (M, dim/2)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d_table(dim: int, grid: int, cls_slot: bool = True, rows_first: bool = False) -> torch.Tensor:
    """(1 + G*G, dim) table (first row zero for the class token), as MAE's ``get_2d_sincos_pos_embed``;
    ``rows_first`` swaps the halves (row coordinate first), as the reference Benchmarking ViT's own table."""
    if dim % 4:
        raise ValueError(f"sin-cos position tables need a width divisible by 4, got {dim}")
    coords = torch.arange(grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(coords, coords, indexing="ij")
    # MAE's order: the first half encodes the column (x) coordinate, the second half the row (y).
    halves = [sincos_1d(dim // 2, gx), sincos_1d(dim // 2, gy)]
    table = torch.cat(halves[::-1] if rows_first else halves, dim=1)  # (G*G, dim)
    if cls_slot:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float()


def frozen_table(dim: int, grid: int) -> nn.Parameter:
    """A frozen ``(1, 1 + G*G, dim)`` sin-cos parameter, MAE style."""
    param = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim), requires_grad=False)
    if param.device.type != "meta":
        param.data.copy_(sincos_2d_table(dim, grid)[None])
    return param


def resize_table(table: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + G*G, C) -> (1, h*w, C) without the class slot, bicubic when the grid differs."""
    grid_tokens = table[:, 1:]  # (1, G*G, C)
    side = math.isqrt(grid_tokens.shape[1])
    if side * side != grid_tokens.shape[1]:
        raise ValueError(f"position table of {grid_tokens.shape[1]} tokens is not a square grid")
    if (side, side) == tuple(hw):
        return grid_tokens
    grid_map = grid_tokens.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, C, G, G)
    grid_map = F.interpolate(grid_map, size=hw, mode="bicubic", align_corners=False)
    return grid_map.permute(0, 2, 3, 1).reshape(1, hw[0] * hw[1], -1)  # (1, h*w, C)
