"""Which kernels run the ViT's attention: chosen explicitly, so that a run's speed does not depend on
what PyTorch happens to prefer on a given GPU.

On Hopper GPUs PyTorch may pick cuDNN's attention, which builds a new graph for every sequence length it
meets: with multi-scale training almost every batch is a new length, and each costs milliseconds of
host time per call. FlashAttention and the memory-efficient kernel have no per-shape set-up; the math
kernel is the fallback they need for dtypes or devices they do not cover (float64, some CPUs).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
}
DEFAULT_BACKENDS = ("flash", "efficient", "math")


def check_backends(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple, or ValueError naming what is allowed (an empty list would allow nothing)."""
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise ValueError(
            f"attention back-ends must be a non-empty list of {tuple(BACKENDS)}, got {list(names)}"
        )
    return tuple(names)


def attention_kernels(names: Sequence[str]) -> AbstractContextManager[None]:
    """A context in which ``scaled_dot_product_attention`` uses only the named back-ends, in that order."""
    return sdpa_kernel([BACKENDS[name] for name in names], set_priority=True)
