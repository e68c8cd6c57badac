"""A small COCO-format instance-segmentation dataset of shapes, generated from a seed in seconds.

It stands in for COCO where a run must finish on a CPU in minutes yet learn something measurable: five
shape categories drawn in random colours on a noisy, textured background, several per image, some
overlapping, and sized from a few pixels (the small objects stride-4 features exist for) to over half the
image side. Images are not all square.

Each image comes from its own random stream ``(seed, split, index)``, so a split does not change when
the other split's size does. Masks are rasterised by pycocotools from the very polygons written to the
JSON and painted with those masks, so annotation and pixels agree exactly. Annotations are amodal
(the whole shape): drawing order hides at most ``MAX_HIDDEN_FRACTION`` of any object.

Layout under the dataset root::

    train/000000.jpg ...            val/000000.jpg ...
    annotations/instances_train.json  annotations/instances_val.json
    synthetic.json                  manifest, written last: its presence means the dataset is complete
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from mimdet.record.atomic import write_json_atomic

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when the images or annotations a seed produces change
CATEGORIES = ("circle", "square", "triangle", "star", "ellipse")
SPLITS = ("train", "val")
MANIFEST = "synthetic.json"

DEFAULT_NUM_TRAIN = 320
DEFAULT_NUM_VAL = 50
DEFAULT_IMAGE_SIZE = 256
DEFAULT_SEED = 0

OBJECTS_PER_IMAGE = (3, 8)  # inclusive range
# Object size, as sqrt(area) in px, is drawn log-uniformly within one of COCO's area bands (small < 32²,
# medium < 96², large). Large ones are rejected more often by the occlusion rule, so they are drawn more:
# the kept objects come out about 45 / 40 / 15 % small / medium / large at the defaults. The large band
# reaches LARGEST_SIDE of the shorter image side; no object's box exceeds MAX_EXTENT of the image.
SIZE_BANDS = ((6.0, 32.0), (32.0, 96.0), (96.0, float("inf")))
SIZE_BAND_WEIGHTS = (0.3, 0.35, 0.35)
LARGEST_SIDE = 0.6
MAX_EXTENT = 0.9
MIN_AREA = 12  # px; smaller rasterisations are re-drawn
MAX_HIDDEN_FRACTION = 0.3
MIN_COLOUR_DISTANCE = 90.0  # RGB distance between an object and the background under it
MIN_ASPECT = 0.75  # shorter / longer side when ``image_size`` is a single int
JPEG_QUALITY = 92
_IMAGE_NAME = re.compile(r"\d{6}\.jpg")

ImageSize = int | tuple[int, int]


@dataclass(frozen=True)
class SyntheticCOCO:
    """Where a generated dataset lives and how big it is; ``generated`` is False when it was reused."""

    root: Path
    num_images: dict[str, int]
    num_annotations: dict[str, int]
    generated: bool

    def json_file(self, split: str) -> Path:
        return self.root / "annotations" / f"instances_{split}.json"

    def image_root(self, split: str) -> Path:
        return self.root / split


def make_synthetic_coco(
    root: str | os.PathLike[str],
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: ImageSize = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
) -> SyntheticCOCO:
    """Generate the dataset under ``root`` unless a complete one with these parameters is already there.

    ``image_size``: an int is the longer side, the shorter one drawn per image in [0.75, 1] of it (random
    orientation); a (height, width) pair fixes every image to that size. Concurrent callers on one root
    (e.g. the ranks of a launch) are serialised by a file lock, so only the first one generates.
    """
    params = _check_params(num_train, num_val, image_size, seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".synthetic.lock"):
        manifest = _read_manifest(root)
        if manifest is not None and manifest.get("params") == params:
            logger.info("synthetic COCO at %s is up to date", root)
            return _dataset(root, manifest, generated=False)
        (root / MANIFEST).unlink(missing_ok=True)
        logger.info("generating synthetic COCO at %s with %s", root, params)
        counts = {
            split: _write_split(root, split, split_index, num_images, params)
            for split_index, (split, num_images) in enumerate(zip(SPLITS, (num_train, num_val), strict=True))
        }
        manifest = {"generator_version": GENERATOR_VERSION, "params": params, "splits": counts}
        write_json_atomic(root / MANIFEST, manifest, indent=2)
    return _dataset(root, manifest, generated=True)


def _check_params(num_train: int, num_val: int, image_size: ImageSize, seed: int) -> dict:
    """The manifest's record of the parameters, after rejecting values the generator cannot honour."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train} and {num_val}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    sides = [image_size] if isinstance(image_size, int) else list(image_size)
    if min(sides) < 32 or (not isinstance(image_size, int) and len(sides) != 2):
        raise ValueError(f"image_size must be an int or a (height, width) pair, each >= 32, got {image_size}")
    size = image_size if isinstance(image_size, int) else sides  # a list, as it reads back from JSON
    return {"num_train": num_train, "num_val": num_val, "image_size": size, "seed": seed}


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:  # "a": creates it, leaves its content and mtime alone
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_manifest(root: Path) -> dict | None:
    """The manifest of a complete dataset of the current generator version, else None."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("generator_version") != GENERATOR_VERSION:
        return None
    if not all((root / "annotations" / f"instances_{split}.json").is_file() for split in SPLITS):
        return None
    return manifest


def _dataset(root: Path, manifest: dict, *, generated: bool) -> SyntheticCOCO:
    splits = manifest["splits"]
    return SyntheticCOCO(
        root=root,
        num_images={split: splits[split]["images"] for split in SPLITS},
        num_annotations={split: splits[split]["annotations"] for split in SPLITS},
        generated=generated,
    )


def _write_split(root: Path, split: str, split_index: int, num_images: int, params: dict) -> dict:
    """Write one split's images and annotation file; return its image and instance counts."""
    image_dir = root / split
    image_dir.mkdir(exist_ok=True)
    images: list[dict] = []
    annotations: list[dict] = []
    for index in range(num_images):
        rng = np.random.default_rng([params["seed"], split_index, index])
        pixels, instances = _draw_image(rng, params["image_size"])
        file_name = f"{index:06d}.jpg"
        Image.fromarray(pixels).save(image_dir / file_name, quality=JPEG_QUALITY)
        height, width = pixels.shape[:2]
        images.append({"id": index + 1, "file_name": file_name, "height": height, "width": width})
        for instance in instances:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, **instance})
    names = {image["file_name"] for image in images}
    for stale in image_dir.iterdir():  # left over from an earlier, larger dataset in this root
        if _IMAGE_NAME.fullmatch(stale.name) and stale.name not in names:
            stale.unlink()
    coco = {
        "info": {
            "description": "mimdet synthetic shapes",
            "version": str(GENERATOR_VERSION),
            "url": "",
            "contributor": "mimdet.data.synthetic",
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(CATEGORIES)
        ],
    }
    (root / "annotations").mkdir(exist_ok=True)
    write_json_atomic(root / "annotations" / f"instances_{split}.json", coco, indent=None)
    return {"images": len(images), "annotations": len(annotations)}


def _image_shape(rng: np.random.Generator, image_size: int | list[int]) -> tuple[int, int]:
    if not isinstance(image_size, int):
        return image_size[0], image_size[1]
    short = int(round(image_size * rng.uniform(MIN_ASPECT, 1.0)))
    return (image_size, short) if rng.random() < 0.5 else (short, image_size)


def _draw_image(rng: np.random.Generator, image_size: int | list[int]) -> tuple[np.ndarray, list[dict]]:
    """One image (H, W, 3) uint8 and its annotations without ids.

    Objects are placed one at a time; a placement that would hide more than MAX_HIDDEN_FRACTION of an
    earlier object is re-drawn (at most 20 tries, then the object is dropped).
    """
    height, width = _image_shape(rng, image_size)
    canvas = _background(rng, height, width)
    visible: list[np.ndarray] = []  # per placed object, its pixels not yet painted over (H, W) bool
    visible_areas: list[int] = []
    full_areas: list[int] = []
    instances = []
    for _ in range(rng.integers(OBJECTS_PER_IMAGE[0], OBJECTS_PER_IMAGE[1] + 1)):
        for _ in range(20):
            category = int(rng.integers(len(CATEGORIES)))
            polygon = _place(rng, _sized(rng, _shape(rng, category), height, width), height, width)
            rle = mask_utils.frPyObjects([polygon.ravel().tolist()], height, width)[0]
            area = int(mask_utils.area(rle))
            if area < MIN_AREA:
                continue
            x0, y0, w, h = (int(v) for v in mask_utils.toBbox(rle))
            window = np.s_[y0 : y0 + h, x0 : x0 + w]
            mask = mask_utils.decode(rle)[window].astype(bool)
            hidden = [np.count_nonzero(seen[window] & mask) for seen in visible]
            if any(
                left - lost < (1 - MAX_HIDDEN_FRACTION) * full
                for left, lost, full in zip(visible_areas, hidden, full_areas, strict=True)
            ):
                continue
            for i, seen in enumerate(visible):
                seen[window] &= ~mask
                visible_areas[i] -= hidden[i]
            visible.append(np.zeros((height, width), dtype=bool))
            visible[-1][window] = mask
            visible_areas.append(area)
            full_areas.append(area)
            patch = canvas[window]
            patch[mask] = _colour(rng, patch[mask].mean(axis=0))
            instances.append(_annotation(polygon, category, area))
            break
    # Uniform pixel noise, over objects too (flat fills would be a shortcut); uint8 draws are fast.
    noise = rng.integers(0, 256, canvas.shape, dtype=np.uint8)
    canvas += (noise - np.float32(127.5)) * np.float32(rng.uniform(8, 24) / 127.5)
    return np.clip(canvas, 0, 255, out=canvas).astype(np.uint8), instances


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A colour gradient with blotches, as float32 (H, W, 3): drawn on a coarse grid, then upsampled."""
    grid_h, grid_w = int(rng.integers(4, 12)), int(rng.integers(4, 12))
    start, end = rng.uniform(30, 225, (2, 3))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.arange(grid_w) * np.cos(angle) + np.arange(grid_h)[:, None] * np.sin(angle)
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1.0)
    blotches = rng.uniform(-1, 1, (grid_h, grid_w, 3)) * rng.uniform(15, 45)
    coarse = np.clip(start + ramp[..., None] * (end - start) + blotches, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)


def _sized(rng: np.random.Generator, unit: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale a shape to an area drawn from the size bands, keeping it within MAX_EXTENT of the image."""
    largest = LARGEST_SIDE * min(height, width)
    low, high = SIZE_BANDS[rng.choice(len(SIZE_BANDS), p=SIZE_BAND_WEIGHTS)]
    side = np.exp(rng.uniform(np.log(min(low, largest)), np.log(min(high, largest))))
    xs, ys = unit[:, 0], unit[:, 1]
    unit_area = 0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))  # shoelace
    extent = unit.max(axis=0) - unit.min(axis=0)
    return unit * min(side / np.sqrt(unit_area), MAX_EXTENT * min(width / extent[0], height / extent[1]))


def _shape(rng: np.random.Generator, category: int) -> np.ndarray:
    """Vertices (V, 2) of a shape of ``category``, centred on the origin, inside the unit-diameter circle."""
    radius = 0.5
    turn = rng.uniform(0, 2 * np.pi)
    name = CATEGORIES[category]
    if name in ("circle", "ellipse"):
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        minor = 1.0 if name == "circle" else rng.uniform(0.35, 0.6)
        local = np.stack([radius * np.cos(angles), minor * radius * np.sin(angles)], axis=1)
        rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
        return local @ rotation.T
    if name == "star":
        angles = turn + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, radius * rng.uniform(0.38, 0.5))
    else:
        corners = 4 if name == "square" else 3
        angles = turn + np.arange(corners) * 2 * np.pi / corners
        if name == "triangle":
            angles += rng.uniform(-0.15, 0.15, corners)
        radii = np.full(corners, radius)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _place(rng: np.random.Generator, vertices: np.ndarray, height: int, width: int) -> np.ndarray:
    """Shift the shape to a random spot where it lies wholly inside the image; round for the JSON."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    offset = rng.uniform(-low, np.array([width, height]) - high)
    return np.round(vertices + offset, 2)


def _colour(rng: np.random.Generator, behind: np.ndarray) -> np.ndarray:
    """A random colour that stands out from ``behind`` (mean RGB under the object), not tied to a class."""
    candidates = rng.uniform(0, 255, (16, 3))
    distance = np.linalg.norm(candidates - behind, axis=1)
    acceptable = np.flatnonzero(distance >= MIN_COLOUR_DISTANCE)
    return candidates[acceptable[0] if acceptable.size else int(distance.argmax())]


def _annotation(polygon: np.ndarray, category: int, area: int) -> dict:
    (x0, y0), (x1, y1) = polygon.min(axis=0), polygon.max(axis=0)
    return {
        "category_id": category + 1,
        "segmentation": [polygon.ravel().tolist()],
        "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
        "area": float(area),
        "iscrowd": 0,
    }


def _parse_size(text: str) -> ImageSize:
    """``256`` or ``HEIGHTxWIDTH`` such as ``192x256``."""
    try:
        if "x" in text:
            height, width = text.lower().split("x")
            return int(height), int(width)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, got {text!r}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m mimdet.data.synthetic",
        description="Generate the synthetic COCO-format shapes dataset (skipped when already present).",
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN, help="train images (%(default)s)")
    parser.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL, help="val images (%(default)s)")
    parser.add_argument(
        "--size",
        type=_parse_size,
        default=DEFAULT_IMAGE_SIZE,
        help="longer image side, the shorter one varying per image, or HEIGHTxWIDTH (%(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (%(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        dataset = make_synthetic_coco(
            args.out, num_train=args.num_train, num_val=args.num_val, image_size=args.size, seed=args.seed
        )
    except ValueError as err:
        parser.error(str(err))
    how = f"generated in {time.perf_counter() - start:.1f} s" if dataset.generated else "already present"
    counts = ", ".join(
        f"{split} {dataset.num_images[split]} images / {dataset.num_annotations[split]} objects"
        for split in SPLITS
    )
    print(f"synthetic COCO at {dataset.root}: {counts}, {len(CATEGORIES)} categories ({how})")


if __name__ == "__main__":
    main()
