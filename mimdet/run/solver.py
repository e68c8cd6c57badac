"""Per-parameter learning-rate factors and weight-decay rules of the MIMDet recipe.

Paper §3.1: the pre-trained ViT learns at half the base rate, the layers trained from scratch for the
task (decoder, FPN, heads) at twice it; the ConvStem, new but small, at the base rate. No weight decay
on norms, biases and position tables. The reference code scales the two factors together (``1/m`` and
``m``, with m = 2 for ViT-B and 3.5 for ViT-L): ``LrFactors`` holds any pair, for the configs to set.
"""

from __future__ import annotations

from dataclasses import dataclass

ENCODER_LR_FACTOR = 0.5
TASK_LR_FACTOR = 2.0
NO_DECAY_TABLES = ("pos_embed", "mask_token", "rel_pos_h", "rel_pos_w", "bias_table", "cls_token")

# Parameter-name prefixes inside the detector (backbone.bottom_up.* is the MIMDet/Benchmarking backbone).
_ENCODER_PREFIXES = (
    "backbone.bottom_up.encoder.",
    "backbone.bottom_up.blocks.",
    "backbone.bottom_up.patch_embed.",
    "backbone.bottom_up.windowed_rel_pos.",  # the reference flavor's shared relative-position tables
    "backbone.bottom_up.global_rel_pos.",
)
_STEM_PREFIXES = ("backbone.bottom_up.stem.",)


@dataclass(frozen=True)
class LrFactors:
    """The learning-rate factor of a detector parameter, by name: ConvStem, pre-trained ViT, the rest."""

    encoder: float = ENCODER_LR_FACTOR
    task: float = TASK_LR_FACTOR
    stem: float = 1.0

    def __call__(self, name: str) -> float:
        if name.startswith(_STEM_PREFIXES):
            return self.stem
        if name.startswith(_ENCODER_PREFIXES) or name == "backbone.bottom_up.pos_embed":
            return self.encoder
        return self.task


def lr_factor(name: str) -> float:
    """Learning-rate factor of the parameter called ``name`` in the detector, the paper's factors."""
    return LrFactors()(name)


def no_decay_overrides() -> dict[str, dict[str, float]]:
    """detectron2 ``overrides`` that switch weight decay off for position tables and tokens."""
    return {name: {"weight_decay": 0.0} for name in NO_DECAY_TABLES}
