"""Stride-4 feature maps of a trained run, for the paper's Fig. 2.

Given a run (config + checkpoint) and an image, returns the backbone's stride-4 map (C2: the ConvStem
output for MIMDet, the transposed-conv upsampled ViT map for the Benchmarking baseline) and FPN's P2,
computed on the image exactly as the detector sees it at test time.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.data import transforms as T
from torch import nn

from mimdet.run.config import build_model
from mimdet.run.resolve import resolve_run


@dataclass(frozen=True)
class FeatureMaps:
    """What Fig. 2 shows for one image and one model (maps cropped to the image, padding removed)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, resized as at test time
    backbone_stride4: torch.Tensor  # (C, H/4, W/4)
    fpn_p2: torch.Tensor  # (256, H/4, W/4)


def load_run_model(
    config_file: str | Path, checkpoint: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[nn.Module, T.Augmentation | None]:
    """The detector of a run in eval mode on the CPU, and its test-time resize."""
    cfg = resolve_run(config_file, overrides).cfg
    model = build_model(cfg).eval()
    if checkpoint is not None:
        DetectionCheckpointer(model).load(str(checkpoint))
    augmentations = instantiate(cfg.dataloader.test.mapper.augmentations)
    return model, T.AugmentationList(augmentations) if augmentations else None


def example_image() -> np.ndarray:
    """The synthetic dataset's first validation image, (H, W, 3) uint8 RGB: Fig. 2's default input."""
    from PIL import Image

    from mimdet.data.synthetic import make_synthetic_coco

    dataset = make_synthetic_coco(
        Path(tempfile.gettempdir()) / "mimdet-fig2-synthetic", num_train=1, num_val=4
    )
    path = sorted(dataset.image_root("val").glob("*.jpg"))[0]
    return np.asarray(Image.open(path).convert("RGB"))


@torch.no_grad()
def feature_maps(model: nn.Module, image: np.ndarray, resize: T.Augmentation | None = None) -> FeatureMaps:
    """C2 of the bottom-up backbone and FPN's P2 for an (H, W, 3) uint8 RGB image."""
    if resize is not None:
        resized = T.AugInput(image)
        resize(resized)
        image = resized.image
    tensor = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
    if getattr(model, "input_format", "RGB") == "BGR":
        tensor = tensor.flip(0)
    images = model.preprocess_image([{"image": tensor}])  # type: ignore[operator]  # normalised, padded
    captured: dict[str, torch.Tensor] = {}
    handle = model.get_submodule("backbone.bottom_up").register_forward_hook(
        lambda _m, _i, out: captured.update(out)
    )
    try:
        pyramid = model.get_submodule("backbone")(images.tensor)
    finally:
        handle.remove()
    height, width = (-(-s // 4) for s in image.shape[:2])
    return FeatureMaps(
        image=image,
        backbone_stride4=captured["c2"][0, :, :height, :width],
        fpn_p2=pyramid["p2"][0, :, :height, :width],
    )
