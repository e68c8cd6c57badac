"""The paper's model variants, each a config plus overrides, with its published parameter count.

Counts are the reference README's (released models, exact to 0.01 M) or the paper's tables (floored to
whole millions); they are what the fidelity tests and the demo's parameter table compare against.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperVariant:
    name: str
    config: str
    overrides: tuple[str, ...]
    paper_params_m: float
    source: str
    floored: bool = False  # the paper prints whole millions, rounded down

    def matches(self, params: int) -> bool:
        """Within 0.1 % of an exact published count, or inside the floored million."""
        millions = params / 1e6
        if self.floored:
            return int(millions) == int(self.paper_params_m)
        return abs(millions - self.paper_params_m) <= 1e-3 * self.paper_params_m


_DEC = "model.backbone.bottom_up.num_decoders"

PAPER_VARIANTS: tuple[PaperVariant, ...] = (
    PaperVariant("MIMDet ViT-B (4 dec, mask token)", "mimdet_vit_base.py", (), 127.56, "README"),
    PaperVariant(
        "MIMDet ViT-B (4 dec, ConvStem fill)",
        "mimdet_vit_base.py",
        ("model.backbone.bottom_up.decoder_fill=convstem",),
        127.95,
        "issue (reference code, later release)",
    ),
    PaperVariant("MIMDet ViT-L (4 dec)", "mimdet_vit_large.py", (), 345.27, "README"),
    PaperVariant("Benchmarking ViT-B", "benchmarking_vit_base.py", (), 118.67, "README"),
    PaperVariant("MIMDet ViT-B (reference code)", "mimdet_vit_base_reference.py", (), 127.96, "README v1.2"),
    PaperVariant("MIMDet ViT-L (reference code)", "mimdet_vit_large_reference.py", (), 349.33, "README v1.2"),
    PaperVariant(
        "Benchmarking ViT-B (reference code)", "benchmarking_vit_base_reference.py", (), 118.67, "README"
    ),
    PaperVariant("Table 3: 1 decoder", "mimdet_vit_base.py", (f"{_DEC}=1",), 118.10, "Table 3"),
    PaperVariant("Table 3: 2 decoders", "mimdet_vit_base.py", (f"{_DEC}=2",), 121.26, "Table 3"),
    PaperVariant("Table 3: 4 decoders", "mimdet_vit_base.py", (f"{_DEC}=4",), 127.56, "Table 3"),
    PaperVariant("Table 3: 8 decoders", "mimdet_vit_base.py", (f"{_DEC}=8",), 140.17, "Table 3"),
    PaperVariant("Table 4 row 3: 7x7 windows", "table4_window.py", (), 113, "Table 4", floored=True),
    PaperVariant(
        "Table 4 row 4: windows, ViT FPN", "table4_window_vit_fpn.py", (), 120, "Table 4", floored=True
    ),
)
