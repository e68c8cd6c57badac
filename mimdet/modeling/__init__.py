"""The MIMDet model family as detectron2 backbones: MIMDet (ConvStem + partial-token ViT + MAE decoder)
and the Benchmarking baseline of Li et al."""

from .benchmarking_vit import BenchmarkingViT
from .conv_stem import ConvStem
from .encoder import PartialTokenEncoder
from .mae_decoder import MAEDecoder
from .mimdet_backbone import MIMDetBackbone

__all__ = ["BenchmarkingViT", "ConvStem", "MAEDecoder", "MIMDetBackbone", "PartialTokenEncoder"]
