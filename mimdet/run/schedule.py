"""Training length derived from epochs and batch size, so overriding one never silently breaks the other.

Configs write ``train.max_iter = "${mimdet.iters:${train.epochs},${dataloader.train.total_batch_size},...}"``;
OmegaConf resolves it whenever it is read, after command-line overrides. One "epoch" is detectron2's
120,000 images (its 1x schedule is 90k iterations x 16 images = 12 epochs), which makes the paper's
36 epochs at batch 64 the reference code's 67,500 iterations.
"""

from __future__ import annotations

from omegaconf import OmegaConf

EPOCH_IMAGES = 120_000


def iterations(epochs: float, total_batch_size: int, epoch_images: int = EPOCH_IMAGES) -> int:
    """Iterations that show the model ``epochs`` x ``epoch_images`` images at this batch size."""
    if total_batch_size <= 0 or epochs <= 0:
        raise ValueError(f"epochs and batch size must be positive, got {epochs} and {total_batch_size}")
    return max(1, round(epochs * epoch_images / total_batch_size))


OmegaConf.register_new_resolver("mimdet.iters", iterations, replace=True)
