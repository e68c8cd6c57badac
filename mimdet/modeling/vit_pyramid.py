"""Li et al.'s adaptors that turn single-scale (stride-16) ViT maps into a pyramid for FPN.

Stride 4: 2x2 transposed conv, norm, GELU, 2x2 transposed conv; stride 8: one transposed conv; stride 16:
identity; stride 32: 2x2 max-pool. Widths stay D throughout. Used by the Benchmarking baseline (on the
outputs of blocks 3/6/9/12) and by Table 4's row 4 (on intermediate blocks, for P2/P3 only). These
upsampled maps are the ones with the checkerboard pattern of the paper's Fig. 2.
"""

from __future__ import annotations

from typing import Literal

from detectron2.layers import get_norm
from torch import nn

# detectron2's get_norm names ("" for none), a Literal so that a misspelt one fails before any run
Norm = Literal["", "BN", "SyncBN", "FrozenBN", "GN", "nnSyncBN", "naiveSyncBN", "naiveSyncBN_N", "LN"]


def upsampling_adaptor(stride: int, dim: int, norm: Norm = "SyncBN") -> nn.Module:
    """The adaptor from a stride-16 map of width ``dim`` to ``stride`` (4, 8, 16 or 32)."""
    if stride == 4:
        return nn.Sequential(
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
            get_norm(norm, dim),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2),
        )
    if stride == 8:
        return nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
    if stride == 16:
        return nn.Identity()
    if stride == 32:
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f"no ViT adaptor for stride {stride}; choose 4, 8, 16 or 32")
