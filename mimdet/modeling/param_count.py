"""Parameter counts of a detector, in total and per component, with the reference's convention.

Every ``nn.Parameter`` counts, frozen position tables included; buffers (BN statistics) do not. With this
convention the released models' counts (127.56 M, 345.27 M, ...) are reproduced.
"""

from __future__ import annotations

from torch import nn

# (component, parameter-name prefixes in a GeneralizedRCNN); the first match wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("stem", ("backbone.bottom_up.stem.", "backbone.bottom_up.patch_embed.")),
    (
        "encoder",
        ("backbone.bottom_up.encoder.", "backbone.bottom_up.blocks.", "backbone.bottom_up.pos_embed"),
    ),
    ("decoder", ("backbone.bottom_up.decoder.",)),
    ("vit_adaptors", ("backbone.bottom_up.adaptors.",)),
    ("fpn", ("backbone.",)),
    ("rpn", ("proposal_generator.",)),
    ("box_head", ("roi_heads.box_head.", "roi_heads.box_predictor.")),
    ("mask_head", ("roi_heads.mask_head.",)),
)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """{"total": n, component: n, ...}; parameters outside every component land in "other"."""
    counts = {name: 0 for name, _ in COMPONENTS}
    counts["other"] = 0
    for name, param in model.named_parameters():
        component = next((c for c, prefixes in COMPONENTS if name.startswith(prefixes)), "other")
        counts[component] += param.numel()
    counts = {name: n for name, n in counts.items() if n}
    counts["total"] = sum(counts.values())
    return counts
