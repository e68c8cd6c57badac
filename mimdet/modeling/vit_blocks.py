"""The one place MIMDet reaches timm: MAE-compatible transformer blocks and window partitioning.

MAE's checkpoints were written by timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), so the same class reads them without renaming. One block of width d has
12 d^2 + 13 d parameters. Attention runs through timm's fused ``scaled_dot_product_attention`` path.

Shapes: B batch, N tokens, D width, h x w token grid, S window side.
"""

from __future__ import annotations

import torch
from detectron2.modeling.backbone.utils import window_partition, window_unpartition
from timm.models.vision_transformer import Block
from torch import nn


class ViTLayerNorm(nn.LayerNorm):
    """LayerNorm with MAE's eps of 1e-6 (a class, as timm's ``norm_layer`` argument expects)."""

    def __init__(self, dim: int, **factory_kwargs: object) -> None:
        super().__init__(dim, eps=1e-6, **factory_kwargs)  # type: ignore[arg-type]


vit_norm = ViTLayerNorm


def drop_path_rates(depth: int, max_rate: float) -> list[float]:
    """Stochastic depth rising linearly from 0 to ``max_rate`` (plain floats: also works on meta)."""
    return [max_rate * i / max(depth - 1, 1) for i in range(depth)]


def make_blocks(
    dim: int, depth: int, num_heads: int, mlp_ratio: float, drop_path_rate: float
) -> nn.ModuleList:
    """``depth`` MAE blocks with stochastic depth rising linearly to ``drop_path_rate``."""
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=vit_norm)
        for rate in drop_path_rates(depth, drop_path_rate)
    )


def to_windows(tokens: torch.Tensor, hw: tuple[int, int], size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, h*w, D) -> (B * windows, S*S, D) and the padded grid (zero tokens fill the border)."""
    grid = tokens.reshape(tokens.shape[0], hw[0], hw[1], -1)  # (B, h, w, D)
    windows, pad_hw = window_partition(grid, size)  # (B * windows, S, S, D)
    return windows.flatten(1, 2), pad_hw


def from_windows(
    windows: torch.Tensor, hw: tuple[int, int], pad_hw: tuple[int, int], size: int
) -> torch.Tensor:
    """Inverse of ``to_windows``: (B * windows, S*S, D) -> (B, h*w, D)."""
    grid = window_unpartition(windows.reshape(-1, size, size, windows.shape[-1]), size, pad_hw, hw)
    return grid.flatten(1, 2)
