"""A tiny MAE pre-training (He et al., arXiv 2111.06377) that writes an official-format MAE checkpoint.

MIMDet fine-tunes MAE's encoder *and* decoder (its Table 3: randomly initialised decoders diverge), and
no official weights can be downloaded here. So tiny runs pre-train their own MAE on the synthetic shapes
and save it exactly as MAE's ``main_pretrain.py`` does (``{"model": state_dict}`` with MAE's key names
and 14x14 position tables), which ``mimdet.modeling.checkpoint.load_mae_checkpoint`` then reads like
a downloaded ``mae_pretrain_vit_base_full.pth``.

The model is ``mimdet.modeling.mae.MaskedAutoencoder``.

``ensure_tiny_mae_checkpoint`` caches one such checkpoint per setting, so every tiny run (tests, tiny
detector trainings, sweeps) shares a single pre-training.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mimdet.run.exit_codes import EXIT_BAD_INPUT, EXIT_STORAGE, interrupted

PROG = "python -m mimdet.pretrain_mae"

try:  # a Ctrl-C while torch loads (seconds) is the same line as once main runs
    import filelock
    import torch
    from PIL import Image
    from torch import nn
    from torch.utils.data import DataLoader, Dataset, RandomSampler
    from torchvision import transforms

    from mimdet.data.image_errors import unreadable_image_line
    from mimdet.data.synthetic import GENERATOR_VERSION, make_synthetic_coco
    from mimdet.modeling.mae import MASK_RATIO, MaskedAutoencoder
    from mimdet.record.atomic import file_in_the_way, not_a_plain_file, storage_problem
    from mimdet.run.arg_types import count, output_file, positive_number, random_seed
except KeyboardInterrupt:
    if __name__ == "__main__":  # imported (by mimdet.train), the importer says it
        sys.exit(interrupted(PROG))
    raise

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
# MAE's optimiser; the learning rate and schedule length are set for a CPU run of minutes instead.
WEIGHT_DECAY = 0.05
BETAS = (0.9, 0.95)
WARMUP_FRACTION = 0.1
RECIPE_VERSION = 1  # bump when a change to the recipe changes the weights a setting produces


class UnreadableImage(ValueError):
    """An image of ``--data`` that cannot be read; the message is one line naming the file."""


class ImageFiles(Dataset):
    """The images under a folder as MAE's augmented crops (of a synthetic dataset root: its train split)."""

    def __init__(self, root: str | Path, img_size: int) -> None:
        root = Path(root)
        folder = root / "train" if (root / "train").is_dir() else root
        self.files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FileNotFoundError(f"no {'/'.join(IMAGE_SUFFIXES)} images under {folder}")
        self.transform = transforms.Compose(
            [
                transforms.RandomResizedCrop(
                    img_size, scale=(0.2, 1.0), interpolation=transforms.InterpolationMode.BICUBIC
                ),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        """The image's crop; an image that cannot be read is one line naming it (not PIL's traceback)."""
        try:
            with Image.open(self.files[index]) as image:
                return self.transform(image.convert("RGB"))  # (3, img_size, img_size)
        except (OSError, Image.DecompressionBombError) as error:
            if (line := unreadable_image_line(self.files[index], error)) is None:
                raise  # the file system's trouble, not the image's
            raise UnreadableImage(line) from None


@dataclass(frozen=True)
class PretrainResult:
    """Where the checkpoint went and whether the loss fell: means over the first and last 10 % of steps."""

    path: Path
    steps: int
    first_loss: float
    last_loss: float
    seconds: float

    def summary(self) -> str:
        return (
            f"MAE pre-training: {self.steps} steps in {self.seconds:.0f} s, loss {self.first_loss:.4f} "
            f"(first 10 %) -> {self.last_loss:.4f} (last 10 %), checkpoint {self.path}"
        )


def pretrain(
    images: str | Path,
    out_path: str | Path,
    *,
    embed_dim: int = 64,
    depth: int = 4,
    num_heads: int = 4,
    decoder_dim: int = 64,
    decoder_depth: int = 8,
    decoder_heads: int = 4,
    img_size: int = 224,
    steps: int = 400,
    batch_size: int = 16,
    lr: float = 2e-3,
    seed: int = 0,
    log_every: int = 25,
) -> PretrainResult:
    """Pre-train an MAE on the images under ``images`` and save it in the official MAE format.

    ``images`` is a folder of JPG/PNG files, or a synthetic dataset root (its ``train/`` split is used).
    AdamW with MAE's betas and weight decay; ``lr`` is reached after a linear warm-up over 10 % of the
    steps and decays on a half cosine to 0. The run is reproducible from ``seed`` and leaves the
    caller's global random state untouched.

    The defaults take ~85 s on 2 CPU cores and bring the loss from ~0.95 to ~0.45 on the synthetic
    shapes. Fewer steps are not proportionally cheaper in quality: the loss sits near 0.68 (patch
    colour and blur) until ~200 steps, then falls as the model starts using the visible context.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    dataset = ImageFiles(images, img_size)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # weights and crops
        model = MaskedAutoencoder(
            img_size=img_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            decoder_dim=decoder_dim,
            decoder_depth=decoder_depth,
            decoder_heads=decoder_heads,
        ).train()
        sampler = RandomSampler(dataset, num_samples=steps * batch_size)
        loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True)
        optimizer = torch.optim.AdamW(_param_groups(model), lr=lr, betas=BETAS)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, steps))
        masks = torch.Generator().manual_seed(seed)
        losses = []
        for step, imgs in enumerate(loader, start=1):
            loss, _, _ = model(imgs, MASK_RATIO, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if step % log_every == 0 or step == steps:
                recent = losses[-log_every:]
                logger.info(
                    "step %d/%d  loss %.4f  lr %.2e  %.0f s",
                    step,
                    steps,
                    sum(recent) / len(recent),
                    optimizer.param_groups[0]["lr"],
                    time.perf_counter() - start,
                )
    window = max(1, steps // 10)
    result = PretrainResult(
        path=Path(out_path),
        steps=steps,
        first_loss=sum(losses[:window]) / window,
        last_loss=sum(losses[-window:]) / window,
        seconds=time.perf_counter() - start,
    )
    metadata: dict[str, str | int | float] = {
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": num_heads,
        "decoder_dim": decoder_dim,
        "decoder_depth": decoder_depth,
        "decoder_heads": decoder_heads,
        "img_size": img_size,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "mask_ratio": MASK_RATIO,
        "recipe_version": RECIPE_VERSION,
        "images": str(images),
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
    }
    save_checkpoint(model, result.path, metadata)
    logger.info("%s", result.summary())
    return result


# What a cached tiny checkpoint is made with (``pretrain``'s defaults; ``log_every`` changes nothing), and
# what ``ensure_tiny_mae_checkpoint(**params)`` may override.
TINY_DEFAULTS: dict[str, int | float] = {
    name: param.default
    for name, param in inspect.signature(pretrain).parameters.items()
    if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "log_every"
}


def save_checkpoint(model: MaskedAutoencoder, path: Path, metadata: dict[str, str | int | float]) -> None:
    """Write ``{"model": ..., "mimdet_pretrain": ...}`` atomically, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save({"model": model.state_dict(), "mimdet_pretrain": metadata}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def default_cache_dir() -> Path:
    """``$MIMDET_CACHE``, else ``~/.cache/mimdet``."""
    return Path(os.environ.get("MIMDET_CACHE") or Path.home() / ".cache" / "mimdet")


def tiny_checkpoint_name(**params: int | float) -> str:
    """A file name that spells out every setting that changes the weights (unknown ones are an error)."""
    unknown = set(params) - set(TINY_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown pre-training parameters {sorted(unknown)}; known: {sorted(TINY_DEFAULTS)}")
    p = {**TINY_DEFAULTS, **params}
    return (
        f"mae_tiny_D{p['embed_dim']}x{p['depth']}h{p['num_heads']}"
        f"_E{p['decoder_dim']}x{p['decoder_depth']}h{p['decoder_heads']}_img{p['img_size']}"
        f"_steps{p['steps']}_bs{p['batch_size']}_lr{p['lr']:g}_seed{p['seed']}"
        f"_synth{GENERATOR_VERSION}_r{RECIPE_VERSION}.pth"
    )


def ensure_tiny_mae_checkpoint(cache_dir: Path | None = None, **params: int | float) -> Path:
    """The cached tiny MAE checkpoint for ``params`` (see ``TINY_DEFAULTS``), pre-trained only if missing.

    The synthetic dataset is generated (with its defaults) under the cache dir as well. Concurrent
    callers are serialised by a file lock next to the checkpoint, so only the first one trains.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache_dir / tiny_checkpoint_name(**params)
    if path.is_file():  # written atomically: present means complete
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(path) + ".lock"):
        if path.is_file():
            return path
        dataset = make_synthetic_coco(cache_dir / "synthetic")
        logger.info("no cached MAE checkpoint %s: pre-training one", path.name)
        pretrain(dataset.root, path, **params)  # type: ignore[arg-type]
    return path


def _param_groups(model: nn.Module) -> list[dict]:
    """MAE's weight-decay rule: none on biases and norm weights; frozen position tables are left out."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_factor(step: int, steps: int) -> float:
    """Linear warm-up over ``WARMUP_FRACTION`` of the steps, then a half cosine to 0 (MAE's schedule)."""
    warmup = max(1, round(WARMUP_FRACTION * steps))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Pre-train a tiny MAE and save it as an official-format MAE checkpoint (for MIMDet).",
    )
    parser.add_argument("--data", type=Path, help="folder of JPG/PNG images, or a synthetic dataset root")
    parser.add_argument("--output", type=output_file, help="checkpoint file to write")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="only make sure the cached tiny checkpoint ($MIMDET_CACHE or ~/.cache/mimdet) exists; "
        "print its path",
    )
    for flag, key, kind, text in (
        ("--steps", "steps", count, "optimiser steps"),
        ("--batch-size", "batch_size", count, "images per step"),
        ("--lr", "lr", positive_number, "peak learning rate"),
        (
            "--embed-dim",
            "embed_dim",
            count,
            f"encoder width, a multiple of its {TINY_DEFAULTS['num_heads']} heads",
        ),
        ("--depth", "depth", count, "encoder blocks"),
        ("--seed", "seed", random_seed, "random seed, 0 to 2**32-1"),
    ):
        parser.add_argument(flag, type=kind, default=TINY_DEFAULTS[key], help=f"{text} (%(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    params = {k: getattr(args, k) for k in ("steps", "batch_size", "lr", "embed_dim", "depth", "seed")}
    if args.embed_dim % TINY_DEFAULTS["num_heads"]:
        parser.error(
            f"argument --embed-dim: {args.embed_dim} (allowed: a multiple of {TINY_DEFAULTS['num_heads']})"
        )
    if not args.tiny and (args.data is None or args.output is None):
        parser.error("--data and --output are required (or use --tiny)")
    if args.output is not None:  # said before the training, not after it
        if problem := file_in_the_way(args.output.parent):
            parser.exit(EXIT_STORAGE, f"{parser.prog}: error: {problem}\n")
        if standing := not_a_plain_file(args.output):
            parser.error(f"argument --output: {args.output} is {standing}, not a file")
    try:
        if args.tiny:
            print(ensure_tiny_mae_checkpoint(**params))
        else:
            print(pretrain(args.data, args.output, **params).summary())
    except KeyboardInterrupt:
        sys.exit(interrupted(parser.prog))
    except UnreadableImage as error:
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {error}\n")
    except OSError as error:  # no images there (one line of its own), or a write the file system refused
        if problem := storage_problem(error):
            parser.exit(EXIT_STORAGE, f"{parser.prog}: error: {problem}\n")
        if not isinstance(error, FileNotFoundError):
            raise
        parser.exit(EXIT_BAD_INPUT, f"{parser.prog}: error: {error}\n")


if __name__ == "__main__":
    main()
