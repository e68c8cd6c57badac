"""Li et al.'s adaptors that turn single-scale (stride-16) ViT maps into a pyramid for FPN.

Stride 4: 2x2 transposed conv, norm, GELU, 2x2 transposed conv; stride 8: one transposed conv; stride 16:
identity; stride 32: 2x2 max-pool. Widths stay D throughout. Used by the Benchmarking baseline (on the
outputs of blocks 3/6/9/12) and by Table 4's row 4 (on intermediate blocks, for P2/P3 only). These
upsampled maps are the ones with the checkerboard pattern of the paper's Fig. 2.

The transposed convs are trained from scratch; ``init`` chooses their start: ``torch`` (PyTorch's
default, uniform with bound 1/sqrt(fan_in)) or ``lecun`` (truncated normal of variance 1/fan_in, zero
bias, as the reference code's Benchmarking ViT). fan_in is timm's and PyTorch's: out channels x 2 x 2.
"""

from __future__ import annotations

from typing import Literal, get_args

from detectron2.layers import get_norm
from timm.layers import lecun_normal_
from torch import nn

# detectron2's get_norm names ("" for none), a Literal so that a misspelt one fails before any run
Norm = Literal["", "BN", "SyncBN", "FrozenBN", "GN", "nnSyncBN", "naiveSyncBN", "naiveSyncBN_N", "LN"]
AdaptorInit = Literal["torch", "lecun"]
ADAPTOR_INITS: tuple[str, ...] = get_args(AdaptorInit)


def upsampling_adaptor(
    stride: int, dim: int, norm: Norm = "SyncBN", init: AdaptorInit = "torch"
) -> nn.Module:
    """The adaptor from a stride-16 map of width ``dim`` to ``stride`` (4, 8, 16 or 32)."""
    if init not in ADAPTOR_INITS:
        raise ValueError(f"adaptor init must be one of {ADAPTOR_INITS}, got {init!r}")

    def deconv() -> nn.ConvTranspose2d:
        layer = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        if init == "lecun":
            lecun_normal_(layer.weight)
            nn.init.zeros_(layer.bias)  # type: ignore[arg-type]  # built with a bias
        return layer

    if stride == 4:
        return nn.Sequential(deconv(), get_norm(norm, dim), nn.GELU(), deconv())
    if stride == 8:
        return deconv()
    if stride == 16:
        return nn.Identity()
    if stride == 32:
        return nn.MaxPool2d(kernel_size=2, stride=2)
    raise ValueError(f"no ViT adaptor for stride {stride}; choose 4, 8, 16 or 32")
