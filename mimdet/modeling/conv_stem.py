"""ConvStem: the randomly initialised convolutional stem that replaces ViT's 16x16 patchify stem.

Paper, Architecture 1: four 3x3 stride-2 convolutions (no bias), each followed by LayerNorm2d(eps=1e-6)
and GELU, channels 3 -> D/8 -> D/4 -> D/2 -> D, and a final 1x1 convolution D -> D (with bias). Its
stride-4 and stride-8 maps feed FPN's P2/P3; its stride-16 map is the ViT encoder's input embedding.
For ViT-B (D=768): 4,079,712 parameters and a receptive field of 31 pixels.

The reference code that trained the released models normalises with ``GroupNorm(1, C, eps=1e-6)``; the
paper says LayerNorm2d. Both have 2C parameters (``weight``, ``bias``: checkpoints load either way), but
they normalise over different axes (GroupNorm(1) over C, H and W together; LayerNorm2d over C at each
position). ``STEM_NORMS`` names both; the paper's is the default.

Shapes: B batch, H x W image, D embedding width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from timm.layers import LayerNorm2d
from torch import nn

STRIDES = (2, 4, 8, 16)


def _layer_norm_2d(channels: int) -> nn.Module:
    return LayerNorm2d(channels, eps=1e-6)


def _group_norm_1(channels: int) -> nn.Module:
    return nn.GroupNorm(1, channels, eps=1e-6)


StemNorm = Literal["layernorm", "groupnorm"]
STEM_NORMS: dict[str, Callable[[int], nn.Module]] = {"layernorm": _layer_norm_2d, "groupnorm": _group_norm_1}


class ConvStem(nn.Module):
    """Four stride-2 conv stages; ``forward`` returns every stage's map keyed by its stride."""

    def __init__(
        self,
        embed_dim: int = 768,
        in_chans: int = 3,
        norm_layer: Callable[[int], nn.Module] = _layer_norm_2d,
        act_layer: Callable[[], nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if embed_dim % 8:
            raise ValueError(f"ConvStem needs embed_dim divisible by 8, got {embed_dim}")
        widths = [embed_dim // 8, embed_dim // 4, embed_dim // 2, embed_dim]
        stages = []
        c_in = in_chans
        for c_out in widths:
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1, bias=False),
                norm_layer(c_out),
                act_layer(),
            ]
            stages.append(nn.Sequential(*layers))
            c_in = c_out
        stages[-1].append(nn.Conv2d(embed_dim, embed_dim, kernel_size=1))
        self.stages = nn.ModuleList(stages)
        self.channels = dict(zip(STRIDES, widths, strict=True))

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        feats = {}
        for stride, stage in zip(STRIDES, self.stages, strict=True):
            x = stage(x)  # (B, C_stride, H/stride, W/stride)
            feats[stride] = x
        return feats
