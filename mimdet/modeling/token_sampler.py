"""Which stride-16 tokens the ViT encoder sees: all of them, or a random subset (paper §2.1).

The sample ratio counts the *padded* token grid, as the reference code does: a batch padded to h x w
tokens keeps ``int(ratio * h * w)`` tokens per image, real tokens first and padding only when the real
ones run out. Every image in the batch therefore keeps the same number of tokens, so the encoder runs on
a dense ``(B, K, D)`` tensor without attention masks.

Padding is recognised from the input itself: detectron2 pads the *normalised* image with zeros, and a
real pixel normalises to exactly zero in all three channels only if it equals the pixel mean, which for
the (non-integer) ImageNet means no 8-bit pixel does. A token is padding when its whole 16x16 patch is 0.

When an image has fewer real tokens than K, some padding tokens are kept too. ``padding_order`` says
which: ``random`` (a uniform draw, as among real tokens) or ``tied`` (the reference code's rule: every
padding token gets the same noise, 100, and torch's default, unstable, sort picks among the ties). The
``tied`` choice is fixed for a given noise draw, but it is not raster order: on the CPU it depends on the
real tokens' noise too, and it may differ between devices and torch versions, as it does for the
reference code.

Shapes: B batch, N = h*w tokens, K kept tokens.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F

from mimdet.record.schema import describe_value

PaddingOrder = Literal["random", "tied"]
PADDING_ORDERS: tuple[str, ...] = get_args(PaddingOrder)
TIED_PADDING_NOISE = 100.0  # the reference code's value: above every uniform draw


def check_sample_ratio(ratio: object, name: str = "sample ratio") -> float:
    """``ratio`` if it keeps some tokens and at most all of them, else a one-line ValueError.

    The sampler's own limit, which the backbone applies to its ratios and a sweep spec to every ratio it
    sets (``sweeps.spec``), so a bad one is refused with this line before any run.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        shown = describe_value(ratio, mapping="a mapping")
        raise ValueError(f"{name} {shown} is not a number in (0, 1] (allowed: 0 < ratio <= 1)")
    return float(ratio)


def num_kept(num_tokens: int, ratio: float) -> int:
    """How many of ``num_tokens`` a ratio keeps (at least one)."""
    return max(1, int(num_tokens * check_sample_ratio(ratio)))


def padding_free_tokens(images: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """(B, 3, H, W) normalised, zero-padded images -> (B, N) bool, True where the patch holds image."""
    nonzero = images.detach().abs().amax(dim=1, keepdim=True)  # (B, 1, H, W)
    return (F.max_pool2d(nonzero, patch, patch) > 0).flatten(1)  # (B, N)


def sample_tokens(
    valid: torch.Tensor,
    ratio: float,
    *,
    generator: torch.Generator | None = None,
    padding_order: str = "random",
) -> torch.Tensor:
    """Indices of the tokens to keep, (B, K) sorted, uniformly random among real tokens first.

    ``generator`` decides the draw: pass a seeded one for reproducible evaluation at ratio < 1. Both
    padding orders draw the same noise, so they keep the same real tokens.
    """
    if padding_order not in PADDING_ORDERS:
        raise ValueError(f"padding_order must be one of {PADDING_ORDERS}, got {padding_order!r}")
    batch, num_tokens = valid.shape
    keep = num_kept(num_tokens, ratio)
    draw_device = generator.device if generator is not None else valid.device
    noise = torch.rand(batch, num_tokens, generator=generator, device=draw_device)
    # drawn on the host for a GPU batch (the evaluation generator): a blocking copy would wait for the GPU
    noise = noise.to(valid.device, non_blocking=True)
    if padding_order == "tied":  # padding after every real token, the sort choosing among the ties
        noise = noise.masked_fill(~valid, TIED_PADDING_NOISE)
    else:  # padding after every real token, among itself at random
        noise = noise + (~valid).float()
    ids_keep = noise.argsort(dim=1)[:, :keep]  # (B, K)
    return ids_keep.sort(dim=1).values


def gather_tokens(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """(B, N, C) tokens, (B, K) indices -> (B, K, C)."""
    return tokens.gather(1, ids_keep[..., None].expand(-1, -1, tokens.shape[-1]))
