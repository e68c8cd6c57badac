"""Mask R-CNN for test images padded onto a fixed canvas, as the reference code evaluates its Benchmarking
ViT: each image is resized so that its long side fits the canvas and padded at the bottom and right (with
grey, by ``FixedSizeCrop``), so the detector takes the whole canvas for the image.

detectron2's post-processing maps detections back to the original image by the ratio of each side to the
canvas; that stretches them whenever the image is not square. Here they are scaled back by the one factor
of the resize (the larger of the two ratios, as the reference's ``lsj_postprocess`` does), clipped to the
original image, and the masks pasted into it.
"""

from __future__ import annotations

from typing import Any

import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.structures import Instances, ROIMasks


class PaddedCanvasRCNN(GeneralizedRCNN):
    """``GeneralizedRCNN`` whose detections are scaled back by the resize's single factor."""

    def inference(
        self,
        batched_inputs: list[dict[str, Any]],
        detected_instances: list[Instances] | None = None,
        do_postprocess: bool = True,
    ) -> Any:
        results = super().inference(batched_inputs, detected_instances, do_postprocess=False)
        if not do_postprocess:
            return results
        return [
            {
                "instances": rescale_from_canvas(
                    found, image.get("height", found.image_size[0]), image.get("width", found.image_size[1])
                )
            }
            for found, image in zip(results, batched_inputs, strict=True)
        ]


def rescale_from_canvas(found: Instances, height: int, width: int, mask_threshold: float = 0.5) -> Instances:
    """Detections on a canvas whose top-left holds the image resized by one factor, on the original
    ``height`` x ``width`` image: boxes scaled and clipped, empty ones dropped, masks pasted."""
    canvas_height, canvas_width = found.image_size
    scale = max(width / canvas_width, height / canvas_height)
    results = Instances((height, width), **found.get_fields())
    boxes = results.pred_boxes if results.has("pred_boxes") else results.proposal_boxes
    boxes.scale(scale, scale)
    boxes.clip((height, width))
    results = results[boxes.nonempty()]
    if results.has("pred_masks"):
        masks = results.pred_masks
        roi_masks = masks if isinstance(masks, ROIMasks) else ROIMasks(masks[:, 0, :, :])
        pasted: torch.Tensor = roi_masks.to_bitmasks(results.pred_boxes, height, width, mask_threshold).tensor
        results.pred_masks = pasted
    return results
