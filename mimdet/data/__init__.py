"""Data for mimdet runs: the synthetic COCO-format shapes dataset and detectron2 dataset registration.

Names are imported on first use: the registry pulls in detectron2 (seconds), which the generator's CLI
(``python -m mimdet.data.synthetic``) does not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimdet.data.registry import (
        DatasetError,
        datasets_root,
        ensure_registered,
        register_coco_path,
        register_synthetic,
        validate_coco_dataset,
    )
    from mimdet.data.synthetic import CATEGORIES, SyntheticCOCO, make_synthetic_coco

_EXPORTS = {
    "CATEGORIES": "synthetic",
    "SyntheticCOCO": "synthetic",
    "make_synthetic_coco": "synthetic",
    "DatasetError": "registry",
    "datasets_root": "registry",
    "ensure_registered": "registry",
    "register_coco_path": "registry",
    "register_synthetic": "registry",
    "validate_coco_dataset": "registry",
}
__all__ = [
    "CATEGORIES",
    "DatasetError",
    "SyntheticCOCO",
    "datasets_root",
    "ensure_registered",
    "make_synthetic_coco",
    "register_coco_path",
    "register_synthetic",
    "validate_coco_dataset",
]


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
