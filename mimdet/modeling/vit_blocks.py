"""The one place MIMDet reaches timm: MAE-compatible transformer blocks and window partitioning.

MAE's checkpoints were written by timm's ``Block`` (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``,
``mlp.fc1``, ``mlp.fc2``), so the same class reads them without renaming. One block of width d has
12 d^2 + 13 d parameters. Attention runs through timm's fused ``scaled_dot_product_attention`` path;
its ``attn_mask`` argument carries an additive bias (the shared relative-position tables).

LayerNorm eps: MAE uses 1e-6 (our default, the ``paper`` flavor); the reference code that trained the
released MIMDet models builds its encoder and decoder with 1e-5 (PyTorch's default).

Shapes: B batch, N tokens, D width, h x w token grid, S window side.
"""

from __future__ import annotations

from functools import partial

import torch
from detectron2.modeling.backbone.utils import window_partition, window_unpartition
from timm.models.vision_transformer import Block
from torch import nn

MAE_LAYER_NORM_EPS = 1e-6


def vit_norm(dim: int, eps: float = MAE_LAYER_NORM_EPS, **factory_kwargs: object) -> nn.LayerNorm:
    """A ViT LayerNorm; timm's and detectron2's blocks call it as ``norm_layer(dim, **factory_kwargs)``."""
    return nn.LayerNorm(dim, eps=eps, **factory_kwargs)  # type: ignore[arg-type]


def drop_path_rates(depth: int, max_rate: float) -> list[float]:
    """Stochastic depth rising linearly from 0 to ``max_rate`` (plain floats: also works on meta)."""
    return [max_rate * i / max(depth - 1, 1) for i in range(depth)]


def make_blocks(
    dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    drop_path_rate: float,
    norm_eps: float = MAE_LAYER_NORM_EPS,
) -> nn.ModuleList:
    """``depth`` MAE blocks with stochastic depth rising linearly to ``drop_path_rate``."""
    # timm annotates norm_layer as a class, but only ever calls it: norm_layer(dim, **factory_kwargs)
    norm_layer: type[nn.Module] = partial(vit_norm, eps=norm_eps)  # type: ignore[assignment]
    return nn.ModuleList(
        Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, drop_path=rate, norm_layer=norm_layer)
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
