"""Two flavors of every backbone: the paper's text, and the reference code that trained the released models.

Each difference between them is a plain constructor argument of the backbone (see ``mimdet.modeling``);
a flavor is the value of each. The configs apply them: the base configs ``FLAVORS["paper"]``, the
``*_reference.py`` configs ``FLAVORS["reference"]`` on top. With the reference flavor a checkpoint of the
reference code (converted by ``python -m mimdet.convert_reference``) computes the same function here.

- MIMDet: ConvStem norm (LayerNorm2d | GroupNorm(1, C)), the ViT LayerNorm eps (MAE's 1e-6 | 1e-5), C5 by
  2x2 average | max pooling, dropped positions filled by the mask token | a projection of ConvStem
  features (initialised by PyTorch | xavier-uniform with zero bias), and which padding tokens an image
  smaller than the kept count keeps (random | the reference's tie in its sort).
- Benchmarking ViT: relative positions by detectron2's decomposed per-block tables | one shared table per
  attention kind; the position table with | without MAE's class-token row; the adaptors' norm the FPN's
  | GroupNorm(32).

The reference flavor also starts a training from MAE weights as the reference code did, in what it
initialises itself: the Benchmarking ViT's position table from MAE's | from its own sin-cos table (row
coordinate first, still learnable), and its adaptors' transposed convs by PyTorch | lecun-normal with
zero bias (MIMDet's fill projection, above, likewise). The ``*_reference.py`` configs add the reference's
optimisation recipe (``experiments/common/reference_recipe.py``: learning-rate factors, weight decay,
schedule, augmentation, heads' norms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, cast

from mimdet.record.schema import FlavorName


@dataclass(frozen=True)
class Flavor:
    """Constructor arguments, by backbone, that make one flavor."""

    mimdet: MappingProxyType[str, Any]
    benchmarking: MappingProxyType[str, Any]


FLAVORS: MappingProxyType[str, Flavor] = MappingProxyType(
    {
        "paper": Flavor(
            mimdet=MappingProxyType(
                dict(
                    stem_norm="layernorm",
                    layer_norm_eps=1e-6,
                    c5_pool="avg",
                    decoder_fill="mask_token",
                    decoder_fill_init="torch",
                    padding_order="random",
                )
            ),
            benchmarking=MappingProxyType(
                dict(
                    rel_pos="decomposed",
                    pos_cls_slot=True,
                    pos_init="mae",
                    adaptor_init="torch",
                    layer_norm_eps=1e-6,
                    norm="${..norm}",
                )
            ),
        ),
        "reference": Flavor(
            mimdet=MappingProxyType(
                dict(
                    stem_norm="groupnorm",
                    layer_norm_eps=1e-5,
                    c5_pool="max",
                    decoder_fill="convstem",
                    decoder_fill_init="xavier",
                    padding_order="tied",
                )
            ),
            # the reference Benchmarking ViT keeps MAE's eps of 1e-6
            benchmarking=MappingProxyType(
                dict(
                    rel_pos="shared",
                    pos_cls_slot=False,
                    pos_init="sincos",
                    adaptor_init="lecun",
                    layer_norm_eps=1e-6,
                    norm="GN",
                )
            ),
        ),
    }
)


def flavor_of(backbone: Mapping[str, Any], model: str) -> FlavorName:
    """The flavor whose every switch a backbone config (``model``: ``mimdet`` | ``benchmarking``) holds, or
    ``custom``; a switch the config leaves out counts as its constructor default, the paper's value.
    Pass the config unresolved: interpolations (``${..norm}``) are compared as written."""
    defaults = FLAVORS["paper"].mimdet if model == "mimdet" else FLAVORS["paper"].benchmarking
    for name, flavor in FLAVORS.items():
        switches = flavor.mimdet if model == "mimdet" else flavor.benchmarking
        if all(backbone.get(key, defaults[key]) == value for key, value in switches.items()):
            return cast(FlavorName, name)
    return "custom"
