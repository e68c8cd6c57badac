"""MIMDet's ConvNet-ViT hybrid backbone as a detectron2 ``Backbone`` (paper §2, Fig. 1b).

``forward`` reads: stem -> sample tokens -> encode -> decode -> pyramid. The ConvStem makes strides
4/8/16; the MAE encoder sees a random subset of the stride-16 tokens; the MAE decoder restores the full
stride-16 map; FPN gets C2/C3 from the ConvStem, C4 from the decoder and C5 by 2x2 pooling of C4.

Config switches cover the paper's ablations without copies of the model:

- ``train_sample_ratio`` / ``test_sample_ratio`` (Table 2): the share of tokens the encoder sees while
  training / evaluating (1.0 = all). Evaluation at a ratio < 1 draws its tokens from a generator that
  is re-seeded with ``eval_seed`` whenever the model enters eval mode, so a number is reproducible.
- ``num_decoders`` (Table 3): 0 (no decoder: only without sampling) or 1..8 MAE decoder blocks.
- ``sampling="window"`` (Table 4 rows 3/4): no sampling, no decoder; every block attends within
  ``window_size`` x ``window_size`` windows and C4/C5 come from the ViT output.
- ``fpn_inputs="vit"`` (Table 4 row 4): C2/C3 come from intermediate ViT blocks through Li et al.'s
  transposed-conv adaptors instead of the ConvStem.
- ``decoder_fill`` (``mask_token`` | ``convstem``) and ``decoder_fill_init`` (``torch`` | ``xavier``),
  ``c5_pool`` (``avg`` as the paper's text | ``max`` as the reference code), ``stem_norm``
  (``layernorm`` as the paper | ``groupnorm`` as the reference code), ``layer_norm_eps`` of the encoder
  and decoder (1e-6 as MAE | 1e-5 as the reference code), ``padding_order`` (``random`` | ``tied``
  as the reference code). ``mimdet.modeling.flavors`` holds the two presets: ``paper`` and ``reference``.

Two switches change how fast a run goes, not which tokens it may keep:

- ``attention``: the scaled-dot-product-attention kernels allowed, in order (see ``attention.py``).
- ``canvas_multiple`` (0 = off): pad each batch further, to a multiple of this many pixels, so that
  multi-scale training meets a handful of tensor shapes instead of a new one at most iterations (every
  new shape costs GPU kernels their per-shape set-up). The kept-token count and the tokens that can be
  kept are those of the batch as it came (padded to FPN's 32 px): the extra border is padding that is
  never kept. What it does change: every layer after the padding sees the extra border (the ConvStem
  next to it, the decoder's attention, FPN, the heads), and the position tables are resized to the
  canvas's grid, as for a batch that holds a larger image. Off by default: it pays in short runs and
  benchmarks; over a full schedule each of the few hundred shapes is new only once.

Shapes: B batch, H x W padded image, h x w = H/16 x W/16 token grid, N = h*w, K kept tokens.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from detectron2.modeling import BACKBONE_REGISTRY, Backbone

from mimdet.record.schema import describe_value

from .attention import DEFAULT_BACKENDS, attention_kernels, check_backends
from .conv_stem import STEM_NORMS, ConvStem, StemNorm
from .encoder import PartialTokenEncoder
from .mae_decoder import MAX_PRETRAINED_DECODERS, DecoderFill, FillInit, MAEDecoder
from .token_sampler import (
    PADDING_ORDERS,
    PaddingOrder,
    check_sample_ratio,
    padding_free_tokens,
    sample_tokens,
)
from .vit_blocks import MAE_LAYER_NORM_EPS
from .vit_pyramid import Norm, upsampling_adaptor

# Choice-valued switches are Literal types: the override and spec checks read the allowed values from
# the constructor's signature (mimdet.run.overrides), so a misspelt value fails before any run.
Sampling = Literal["random", "window"]
FpnInputs = Literal["hybrid", "vit"]
C5Pool = Literal["avg", "max"]
SAMPLINGS: tuple[str, ...] = get_args(Sampling)
FPN_INPUTS: tuple[str, ...] = get_args(FpnInputs)
C5_POOLS: tuple[str, ...] = get_args(C5Pool)
OUT_FEATURES = ("c2", "c3", "c4", "c5")


def check_num_decoders(count: object) -> int:
    """``count`` if the backbone can have that many MAE decoder blocks (0: none), else a one-line ValueError.

    The backbone's own limit (MAE pre-trains 8), which a sweep spec applies to every count it sets
    (``sweeps.spec``), so a bad one is refused with this line before any run.
    """
    if type(count) is not int or not 0 <= count <= MAX_PRETRAINED_DECODERS:
        shown = describe_value(count, mapping="a mapping")
        raise ValueError(
            f"num_decoders {shown} is not a decoder count (allowed: integers 0..{MAX_PRETRAINED_DECODERS})"
        )
    return count


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


@BACKBONE_REGISTRY.register()
class MIMDetBackbone(Backbone):
    """ConvStem + partial-token MAE encoder + MAE decoder, with C2..C5 outputs for FPN."""

    # Where an official MAE checkpoint's tensors go (see checkpoint.py); the patchify stem is dropped.
    MAE_KEY_MAP = (
        ("blocks", "encoder.blocks"),
        ("norm", "encoder.norm"),
        ("pos_embed", "encoder.pos_embed"),
        ("mask_token", "decoder.mask_token"),
        ("decoder_embed", "decoder.embed"),
        ("decoder_pos_embed", "decoder.pos_embed"),
        ("decoder_blocks", "decoder.blocks"),
        ("decoder_norm", "decoder.norm"),
    )

    def __init__(
        self,
        *,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        pos_grid: int = 50,
        drop_path_rate: float = 0.1,
        sampling: Sampling = "random",
        train_sample_ratio: float = 0.5,
        test_sample_ratio: float = 1.0,
        eval_seed: int = 0,
        window_size: int = 7,
        num_decoders: int = 4,
        decoder_dim: int = 512,
        decoder_heads: int = 16,
        decoder_fill: DecoderFill = "mask_token",
        decoder_fill_init: FillInit = "torch",
        fpn_inputs: FpnInputs = "hybrid",
        vit_fpn_blocks: tuple[int, int] | None = None,
        c5_pool: C5Pool = "avg",
        stem_norm: StemNorm = "layernorm",
        layer_norm_eps: float = MAE_LAYER_NORM_EPS,
        padding_order: PaddingOrder = "random",
        norm: Norm = "SyncBN",
        attention: tuple[str, ...] = DEFAULT_BACKENDS,
        canvas_multiple: int = 0,
    ) -> None:
        super().__init__()
        self.attention = check_backends(attention)
        if canvas_multiple < 0 or canvas_multiple % 32:
            raise ValueError(
                f"canvas_multiple must be 0 (off) or a multiple of 32 pixels, got {canvas_multiple}"
            )
        self.canvas_multiple = canvas_multiple
        self.sampling = _choice("sampling", sampling, SAMPLINGS)
        self.fpn_inputs = _choice("fpn_inputs", fpn_inputs, FPN_INPUTS)
        self.c5_pool = _choice("c5_pool", c5_pool, C5_POOLS)
        self.padding_order = _choice("padding_order", padding_order, PADDING_ORDERS)
        stem_norm_layer = STEM_NORMS[_choice("stem_norm", stem_norm, tuple(STEM_NORMS))]
        self.num_decoders = check_num_decoders(num_decoders)
        windowed = self.sampling == "window"
        if windowed and (num_decoders or train_sample_ratio != 1.0 or test_sample_ratio != 1.0):
            raise ValueError(
                "sampling='window' uses every token and no decoder: set both ratios to 1.0 and "
                f"num_decoders=0 (got {train_sample_ratio}, {test_sample_ratio}, {num_decoders})"
            )
        self.train_sample_ratio = train_sample_ratio
        self.test_sample_ratio = test_sample_ratio
        self._check_ratios()
        self.eval_seed = eval_seed
        self._eval_generator = torch.Generator().manual_seed(eval_seed)

        self.stem = ConvStem(embed_dim, norm_layer=stem_norm_layer)
        self.encoder = PartialTokenEncoder(
            embed_dim,
            depth,
            num_heads,
            mlp_ratio,
            pos_grid,
            drop_path_rate,
            window_size if windowed else 0,
            norm_eps=layer_norm_eps,
        )
        self.decoder = (
            MAEDecoder(
                embed_dim,
                decoder_dim,
                num_decoders,
                decoder_heads,
                mlp_ratio,
                pos_grid,
                decoder_fill,
                norm_eps=layer_norm_eps,
                fill_init=decoder_fill_init,
            )
            if num_decoders
            else None
        )
        c4_channels = decoder_dim if num_decoders else embed_dim
        self.vit_fpn_blocks: tuple[int, ...] = ()
        if self.fpn_inputs == "vit":
            self.vit_fpn_blocks = vit_fpn_blocks or (depth // 4 - 1, depth // 2 - 1)
            self.adaptors = torch.nn.ModuleList(upsampling_adaptor(s, embed_dim, norm) for s in (4, 8))
            low_channels = (embed_dim, embed_dim)
        else:
            low_channels = (self.stem.channels[4], self.stem.channels[8])
        self._out_features = list(OUT_FEATURES)
        self._out_feature_channels = dict(
            zip(OUT_FEATURES, (*low_channels, c4_channels, c4_channels), strict=True)
        )
        self._out_feature_strides = dict(zip(OUT_FEATURES, (4, 8, 16, 32), strict=True))

    @property
    def sample_ratio(self) -> float:
        """The ratio in force now: the training one in train mode, the test one in eval mode."""
        return self.train_sample_ratio if self.training else self.test_sample_ratio

    def train(self, mode: bool = True) -> MIMDetBackbone:
        super().train(mode)
        if not mode:
            self._eval_generator.manual_seed(self.eval_seed)
        return self

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        ids_keep = self.sample(images)  # (B, K) or None, on the batch's own grid
        images, ids_keep = self.to_canvas(images, ids_keep)
        stem = self.stem(images)  # {stride: (B, C_s, H/s, W/s)}
        hw = tuple(stem[16].shape[-2:])
        tokens = stem[16].flatten(2).transpose(1, 2)  # (B, N, D)
        with attention_kernels(self.attention):
            latent, tapped = self.encoder(tokens, hw, ids_keep, self.vit_fpn_blocks)  # (B, K, D)
            c4 = self.decode(latent, ids_keep, hw, tokens)  # (B, N, C4)
        return self.to_pyramid(stem, c4, tapped, hw)

    def to_canvas(
        self, images: torch.Tensor, ids_keep: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Zero-pad (B, 3, H, W) to the canvas, and move token indices from the h x w grid to its grid."""
        if not self.canvas_multiple:
            return images, ids_keep
        height, width = images.shape[-2:]
        canvas_h, canvas_w = (
            -(-side // self.canvas_multiple) * self.canvas_multiple for side in (height, width)
        )
        images = F.pad(images, (0, canvas_w - width, 0, canvas_h - height))  # zeros: padding, as detectron2's
        if ids_keep is not None:
            w, canvas_grid_w = width // 16, canvas_w // 16
            ids_keep = ids_keep // w * canvas_grid_w + ids_keep % w  # same (row, column), wider rows
        return images, ids_keep

    def sample(self, images: torch.Tensor) -> torch.Tensor | None:
        """Indices of the tokens the encoder sees, or None for all of them."""
        self._check_ratios()
        ratio = self.sample_ratio
        if ratio >= 1.0:
            return None
        valid = padding_free_tokens(images)  # (B, N)
        generator = None if self.training else self._eval_generator
        return sample_tokens(valid, ratio, generator=generator, padding_order=self.padding_order)

    def decode(
        self, latent: torch.Tensor, ids_keep: torch.Tensor | None, hw: tuple[int, int], tokens: torch.Tensor
    ) -> torch.Tensor:
        if self.decoder is None:
            return latent  # (B, N, D): nothing was dropped
        return self.decoder(latent, ids_keep, hw, tokens)

    def to_pyramid(
        self,
        stem: dict[int, torch.Tensor],
        c4_tokens: torch.Tensor,
        tapped: dict[int, torch.Tensor],
        hw: tuple[int, int],
    ) -> dict[str, torch.Tensor]:
        c4 = _tokens_to_map(c4_tokens, hw)  # (B, C4, h, w)
        pool = F.avg_pool2d if self.c5_pool == "avg" else F.max_pool2d
        if self.fpn_inputs == "vit":
            c2, c3 = (
                adaptor(_tokens_to_map(tapped[i], hw))
                for adaptor, i in zip(self.adaptors, self.vit_fpn_blocks, strict=True)
            )
        else:
            c2, c3 = stem[4], stem[8]
        return {"c2": c2, "c3": c3, "c4": c4, "c5": pool(c4, kernel_size=2, stride=2)}

    def _check_ratios(self) -> None:
        for name in ("train_sample_ratio", "test_sample_ratio"):
            ratio = check_sample_ratio(getattr(self, name), name)
            if ratio < 1.0 and not self.num_decoders:
                raise ValueError(
                    f"{name}={ratio} drops tokens, which needs num_decoders >= 1 to restore them"
                )


def _tokens_to_map(tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, N, C) -> (B, C, h, w)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *hw)
