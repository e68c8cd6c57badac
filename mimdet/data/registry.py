"""Dataset names for detectron2's catalogs, and a check of a dataset's files before a run starts.

detectron2 registers the standard COCO splits (``coco_2017_train``, ...) on import, under
``$DETECTRON2_DATASETS`` (default ``./datasets``), but only reads their files once training has built its
model; a typo in a path then fails minutes in, with a traceback. :func:`ensure_registered` checks the
files first and stops with a one-line :class:`DatasetError` that names the file at fault.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

from mimdet.data.coco_entries import annotation_problem, has_training_box, repeated_id
from mimdet.data.synthetic import (
    CATEGORIES,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    DEFAULT_SEED,
    ImageSize,
    make_synthetic_coco,
)

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]


class DatasetError(ValueError):
    """A dataset that cannot be used as registered; the message is one line and names the file at fault."""


@dataclass(frozen=True)
class DatasetSize:
    """What a run's settings must fit: the images a batch is drawn from, the categories a model tells."""

    images: int
    categories: int


def datasets_root() -> Path:
    """Where detectron2 looks for its builtin datasets, and where the synthetic one goes by default."""
    return Path(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))


def validate_coco_dataset(json_file: StrPath, image_root: StrPath, *, training: bool = False) -> DatasetSize:
    """Raise DatasetError unless ``json_file`` is COCO instances JSON with all its images in ``image_root``
    (and, for a ``training`` set, an annotation to train on); its size.

    Cheap next to training: one JSON parse and one directory listing per image folder, no image decoding.
    """
    coco = _check_coco_structure(_load_json(Path(json_file)), json_file)
    if training and not has_training_box(coco["annotations"]):
        raise DatasetError(
            f"{json_file}: no annotation that is not a crowd (iscrowd 0), and a training set needs one "
            "(detectron2 finds no image to train on)"
        )
    if not os.path.isdir(image_root):
        raise DatasetError(f"{image_root}: image folder not found (images of {json_file})")
    listings: dict[str, set[str]] = {}
    missing = []
    for image in coco["images"]:
        path = os.path.join(image_root, image["file_name"])
        folder, name = os.path.split(path)
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if name not in listings[folder]:
            missing.append(path)
    if missing:
        raise DatasetError(
            f"{json_file}: {len(missing)} of {len(coco['images'])} images are missing, first: {missing[0]}"
        )
    return DatasetSize(images=len(coco["images"]), categories=len(coco["categories"]))


def _load_json(json_file: Path) -> object:
    if not json_file.is_file():
        raise DatasetError(f"{json_file}: annotation file not found")
    try:
        with open(json_file, "rb") as handle:
            return json.load(handle)
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
        raise DatasetError(f"{json_file}: not valid JSON ({err})") from None


def _check_coco_structure(coco: object, json_file: StrPath) -> dict:
    """Return ``coco`` once it has the parts of the COCO instances format that detectron2's loader uses."""

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{json_file}: not COCO instances format: {problem}")

    if not isinstance(coco, dict):
        raise fail(f"top level is a {type(coco).__name__}, expected an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise fail(f"'{key}' is missing" if key not in coco else f"'{key}' is not a list")
    required = {
        "images": {"id": int, "file_name": str, "width": int, "height": int},
        "annotations": {"id": int, "image_id": int, "category_id": int, "bbox": list},
        "categories": {"id": int, "name": str},
    }
    for key, fields in required.items():
        for index, entry in enumerate(coco[key]):
            if not isinstance(entry, dict):
                raise fail(f"{key}[{index}] is not an object")
            for field, kind in fields.items():
                value = entry.get(field)
                if not isinstance(value, kind) or isinstance(value, bool):  # JSON true is no int
                    raise fail(f"{key}[{index}] has no {kind.__name__} '{field}'")
    for key in ("images", "categories"):
        if not coco[key]:
            raise fail(f"'{key}' is empty (detectron2 reads no dataset without them)")
    for index, image in enumerate(coco["images"]):
        if image["width"] < 1 or image["height"] < 1:
            raise fail(f"images[{index}] is {image['width']}x{image['height']} pixels")
    for index, annotation in enumerate(coco["annotations"]):
        if problem := _bbox_problem(annotation["bbox"]):
            raise fail(f"annotations[{index}] bbox {annotation['bbox']}: {problem}")
        if found := annotation_problem(annotation):
            raise fail(f"annotations[{index}].{found[0]}: {found[1]}")
    if repeated := repeated_id(coco["annotations"]):
        raise fail(
            f"annotations[{repeated[0]}].id is {coco['annotations'][repeated[0]]['id']}, as annotations"
            f"[{repeated[1]}]'s (allowed: an id once; detectron2 refuses ids that are not unique)"
        )
    image_ids = {image["id"] for image in coco["images"]}
    category_ids = {category["id"] for category in coco["categories"]}
    for index, annotation in enumerate(coco["annotations"]):
        if annotation["image_id"] not in image_ids:
            raise fail(f"annotations[{index}] refers to unknown image_id {annotation['image_id']}")
        if annotation["category_id"] not in category_ids:
            raise fail(f"annotations[{index}] refers to unknown category_id {annotation['category_id']}")
    return coco


def _bbox_problem(bbox: list) -> str | None:
    """What is wrong with a COCO box ``[x, y, width, height]``, or None: pycocotools fails on another length
    or a string in a traceback once the evaluation runs, and a negative size is no box."""
    if len(bbox) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
        return "expected 4 numbers [x, y, width, height]"
    if not all(math.isfinite(v) for v in bbox) or bbox[2] < 0 or bbox[3] < 0:
        return "expected finite numbers and a width and height of 0 or more"
    return None


def register_coco_path(name: str, json_file: StrPath, image_root: StrPath) -> str:
    """Validate a COCO-format dataset, then register it as ``name``; return the name.

    A name already registered with other paths (a builtin one included) is replaced.
    """
    validate_coco_dataset(json_file, image_root)
    _register(name, json_file, image_root, metadata={})
    return name


def register_synthetic(
    root: StrPath | None = None,
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: ImageSize = DEFAULT_IMAGE_SIZE,
    seed: int = DEFAULT_SEED,
) -> tuple[str, str]:
    """Generate the synthetic dataset if needed and register its (train, val) names.

    Default parameters give ``synthetic_train``/``synthetic_val`` (the names the tiny configs use); other
    parameters add a suffix such as ``_seed1``, and live in their own folder under ``root`` (default: the
    detectron2 datasets folder), so runs with different data never overwrite each other's files.
    """
    suffix = "".join(
        part
        for part, is_default in (
            (f"_seed{seed}", seed == DEFAULT_SEED),
            (f"_size{_size_tag(image_size)}", image_size == DEFAULT_IMAGE_SIZE),
            (f"_train{num_train}", num_train == DEFAULT_NUM_TRAIN),
            (f"_val{num_val}", num_val == DEFAULT_NUM_VAL),
        )
        if not is_default
    )
    dataset = make_synthetic_coco(
        Path(root if root is not None else datasets_root()).absolute() / f"synthetic{suffix}",
        num_train=num_train,
        num_val=num_val,
        image_size=image_size,
        seed=seed,
    )
    names = (f"synthetic{suffix}_train", f"synthetic{suffix}_val")
    for name, split in zip(names, ("train", "val"), strict=True):
        _register(
            name, dataset.json_file(split), dataset.image_root(split), {"thing_classes": list(CATEGORIES)}
        )
    return names


def _size_tag(image_size: ImageSize) -> str:
    return str(image_size) if isinstance(image_size, int) else "x".join(map(str, image_size))


def _register(name: str, json_file: StrPath, image_root: StrPath, metadata: dict) -> None:
    """Register with detectron2, which refuses a name twice: same paths is a no-op, other paths replace."""
    json_file, image_root = str(json_file), str(image_root)
    if name in DatasetCatalog.list():
        registered = MetadataCatalog.get(name)
        if (registered.get("json_file"), registered.get("image_root")) == (json_file, image_root):
            return
        logger.info("dataset %s: replacing %s with %s", name, registered.get("json_file"), json_file)
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    register_coco_instances(name, metadata, json_file, image_root)


def ensure_registered(names: str | Iterable[str], *, training: bool = False) -> dict[str, DatasetSize]:
    """Stop before training when a dataset name is unknown or its COCO files are missing or malformed; the
    sizes of the COCO ones.

    Takes what a config holds in ``dataloader.*.dataset.names``: one name or several; ``training`` for the
    training sets. Datasets not in COCO instances format (LVIS, panoptic, ...) are only checked for being
    registered, and have no size here.
    """
    sizes = {}
    for name in [names] if isinstance(names, str) else names:
        if name not in DatasetCatalog.list():
            raise DatasetError(_unknown_name_message(name))
        metadata = MetadataCatalog.get(name)
        if metadata.get("evaluator_type") != "coco":
            logger.info("dataset %s: files not checked (not COCO instances format)", name)
            continue
        try:
            sizes[name] = validate_coco_dataset(metadata.json_file, metadata.image_root, training=training)
        except DatasetError as err:
            hint = ""
            if Path(metadata.json_file).is_relative_to(datasets_root()):
                hint = f"; detectron2 looks under DETECTRON2_DATASETS={datasets_root()}"
            raise DatasetError(f"{err} (dataset {name!r}{hint})") from None
    return sizes


def _unknown_name_message(name: str) -> str:
    close = difflib.get_close_matches(name, DatasetCatalog.list(), n=5, cutoff=0.6)
    message = f"unknown dataset {name!r}"
    if close:
        message += f"; close matches: {', '.join(close)}"
    if name.startswith("synthetic"):
        message += "; synthetic datasets exist once mimdet.data.register_synthetic() has run"
    return message
