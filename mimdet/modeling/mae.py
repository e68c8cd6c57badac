"""MAE (He et al., arXiv 2111.06377) as its ``models_mae.py`` builds it, for the tiny pre-training.

MIMDet starts from MAE's encoder *and* decoder, so tiny runs pre-train their own MAE
(``mimdet.pretrain_mae``); with the reference's parameter names its state dict is an official checkpoint.
The recipe: patchify, add fixed sin-cos positions, keep a random 25 % of the patches per image (argsort
of uniform noise), encode them with the class token, fill the rest with the mask token, decode the full
sequence, and score the pixel prediction with an MSE on the masked patches only, against per-patch
normalised pixels (``norm_pix_loss``).

Shapes: B batch, L = G*G patches (G = 14 at 224 px), K = L/4 kept patches, D encoder width, E decoder
width, P = 16 patch side.
"""

from __future__ import annotations

import torch
from timm.layers import PatchEmbed
from torch import nn

from mimdet.modeling.pos_embed import frozen_table
from mimdet.modeling.vit_blocks import make_blocks, vit_norm

PATCH = 16
MASK_RATIO = 0.75


class MaskedAutoencoder(nn.Module):
    """MAE with ``models_mae.py``'s parameter names, so its state dict is an official checkpoint."""

    def __init__(
        self,
        *,
        img_size: int = 224,
        embed_dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        decoder_dim: int = 64,
        decoder_depth: int = 8,
        decoder_heads: int = 4,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = True,
    ) -> None:
        super().__init__()
        if img_size % PATCH:
            raise ValueError(f"img_size must be a multiple of {PATCH}, got {img_size}")
        grid = img_size // PATCH
        self.norm_pix_loss = norm_pix_loss
        # encoder
        self.patch_embed = PatchEmbed(img_size, PATCH, 3, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = frozen_table(embed_dim, grid)  # (1, 1 + L, D), fixed sin-cos
        self.blocks = make_blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate=0.0)
        self.norm = vit_norm(embed_dim)
        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = frozen_table(decoder_dim, grid)  # (1, 1 + L, E), fixed sin-cos
        self.decoder_blocks = make_blocks(decoder_dim, decoder_depth, decoder_heads, mlp_ratio, 0.0)
        self.decoder_norm = vit_norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, PATCH * PATCH * 3)
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's init: the patchify conv as a Linear, tokens N(0, 0.02), Linear xavier, LayerNorm (1, 0)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = MASK_RATIO, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> loss, prediction (B, L, P*P*3), mask (B, L) with 1 = masked."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask

    @staticmethod
    def patchify(imgs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, L, P*P*3), pixels of a patch in (row, column, channel) order as MAE."""
        b, c, h, w = imgs.shape
        x = imgs.reshape(b, c, h // PATCH, PATCH, w // PATCH, PATCH)
        x = torch.einsum("nchpwq->nhwpqc", x)  # (B, h, w, P, P, 3)
        return x.reshape(b, (h // PATCH) * (w // PATCH), PATCH * PATCH * c)

    @staticmethod
    def random_masking(
        x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep a random ``1 - mask_ratio`` of each sequence: (B, L, D) -> (B, K, D), mask, ids_restore."""
        b, length, dim = x.shape
        keep = int(length * (1 - mask_ratio))
        noise_device = generator.device if generator is not None else x.device
        noise = torch.rand(b, length, generator=generator, device=noise_device)  # (B, L)
        noise = noise.to(x.device, non_blocking=True)  # drawn on the host by a seeded generator: no wait
        ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :keep]  # (B, K)
        kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # (B, K, D)
        mask = torch.ones(b, length, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # (B, L), back in patch order
        return kept, mask, ids_restore

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> latent (B, 1 + K, D) with the class token first, mask (B, L), ids_restore."""
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]  # (B, L, D)
        x, mask, ids_restore = self.random_masking(x, mask_ratio, generator)  # (B, K, D)
        cls_token = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # (B, 1, D)
        x = torch.cat([cls_token, x], dim=1)  # (B, 1 + K, D)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, 1 + K, D) -> pixel prediction (B, L, P*P*3) for every patch, in patch order."""
        x = self.decoder_embed(latent)  # (B, 1 + K, E)
        b, length = ids_restore.shape
        mask_tokens = self.mask_token.expand(b, length + 1 - x.shape[1], -1)  # (B, L - K, E)
        patches = torch.cat([x[:, 1:], mask_tokens], dim=1)  # (B, L, E), shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed  # (B, 1 + L, E)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # (B, L, P*P*3), class token dropped

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE over the masked patches only; the target is each patch's pixels normalised on their own."""
        target = self.patchify(imgs)  # (B, L, P*P*3)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)  # (B, L), per patch
        return (loss * mask).sum() / mask.sum()
