"""The Fig. 2 feature-map API: stride-4 backbone map and FPN P2 of MIMDet and of the Benchmarking ViT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from mimdet.run.features import feature_maps, load_run_model


@pytest.mark.parametrize(("config", "channels"), [("tiny_mimdet.py", 16), ("tiny_benchmarking.py", 64)])
def test_stride4_maps_cover_the_resized_image(config: str, channels: int) -> None:
    model, resize = load_run_model(config)
    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    maps = feature_maps(model, image, resize)
    height, width = maps.image.shape[:2]
    assert max(height, width) == 256  # the tiny test-time resize
    expected = (-(-height // 4), -(-width // 4))
    assert maps.backbone_stride4.shape == (channels, *expected)  # MIMDet: ConvStem D/4; Benchmarking: D
    assert maps.fpn_p2.shape == (32, *expected)


def test_maps_come_from_the_checkpoint(tmp_path: Path) -> None:
    model, resize = load_run_model("tiny_mimdet.py")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.5)
    DetectionCheckpointer(model, str(tmp_path)).save("model_final")
    image = np.full((128, 128, 3), 90, dtype=np.uint8)
    fresh = feature_maps(load_run_model("tiny_mimdet.py")[0], image, resize)
    loaded = feature_maps(load_run_model("tiny_mimdet.py", tmp_path / "model_final.pth")[0], image, resize)
    trained = feature_maps(model, image, resize)
    assert torch.allclose(loaded.backbone_stride4, trained.backbone_stride4)
    assert not torch.allclose(loaded.backbone_stride4, fresh.backbone_stride4)
