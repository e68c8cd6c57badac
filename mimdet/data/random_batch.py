"""Random detectron2 training inputs (images with box + mask instances), for smoke runs and shape tests.

Not a dataset: nothing here is learnable. It exercises the full training code path of a detector
(losses of RPN, box and mask heads) without reading files.
"""

from __future__ import annotations

import torch
from detectron2.structures import BitMasks, Boxes, Instances


def random_inputs(
    sizes: list[tuple[int, int]], num_classes: int, instances_per_image: int = 3, seed: int = 0
) -> list[dict]:
    """One detectron2 input dict per (height, width), each with rectangular box/mask instances."""
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for height, width in sizes:
        image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
        corners = torch.rand(instances_per_image, 4, generator=generator)
        x0 = (corners[:, 0] * width * 0.6).floor()
        y0 = (corners[:, 1] * height * 0.6).floor()
        x1 = (x0 + 8 + corners[:, 2] * width * 0.4).clamp(max=width).floor()
        y1 = (y0 + 8 + corners[:, 3] * height * 0.4).clamp(max=height).floor()
        boxes = torch.stack([x0, y0, x1, y1], dim=1)
        masks = torch.zeros(instances_per_image, height, width, dtype=torch.bool)
        for i, (a, b, c, d) in enumerate(boxes.long().tolist()):
            masks[i, b:d, a:c] = True
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(boxes)
        instances.gt_classes = torch.randint(0, num_classes, (instances_per_image,), generator=generator)
        instances.gt_masks = BitMasks(masks)
        inputs.append({"image": image, "height": height, "width": width, "instances": instances})
    return inputs
