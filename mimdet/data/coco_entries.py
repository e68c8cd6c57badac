"""Checks of a COCO instances file's annotations beyond their types, each a problem or None.

detectron2's loader and pycocotools' evaluation read these fields after the run has started and fail in
a traceback on what they cannot use: a repeated annotation id (detectron2's assertion), a polygon of
fewer than 3 points or a segmentation of another form (pycocotools' "input type is not supported"), an
``iscrowd`` or ``area`` that is not a number, a training set without a box to learn from ("No valid data
found"). ``mimdet.data.registry`` says them in one line naming the file and the entry, before the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from mimdet.record.schema import describe_value

MIN_POLYGON_NUMBERS = 6  # 3 points: pycocotools refuses fewer


def _is_number(value: object) -> bool:
    """A finite int or float; bool is JSON's true or false, no number."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def segmentation_problem(segmentation: object) -> str | None:
    """What is wrong with an annotation's ``segmentation``, or None: polygons (lists of x, y numbers, at
    least 3 points each) or a run-length encoding (``counts`` and ``size``), as pycocotools reads them."""
    if isinstance(segmentation, list):
        if not segmentation:
            return "an empty list (allowed: polygons of 3 or more points, or an RLE object)"
        for polygon in segmentation:
            if (
                not isinstance(polygon, list)
                or len(polygon) < MIN_POLYGON_NUMBERS
                or len(polygon) % 2
                or not all(map(_is_number, polygon))
            ):
                shown = f"of {len(polygon)} values" if isinstance(polygon, list) else describe_value(polygon)
                return (
                    f"a polygon {shown} (allowed: lists of x, y numbers, an even count, at least "
                    f"{MIN_POLYGON_NUMBERS} each)"
                )
        return None
    if isinstance(segmentation, dict):
        counts, size = segmentation.get("counts"), segmentation.get("size")
        counts_ok = isinstance(counts, str) or (isinstance(counts, list) and all(map(_is_count, counts)))
        size_ok = isinstance(size, list) and len(size) == 2 and all(_is_count(n) and n > 0 for n in size)
        if counts_ok and size_ok:
            return None
        return "an RLE object without string or integer 'counts' and a 'size' of [height, width]"
    return f"{describe_value(segmentation)} (allowed: polygons, lists of x, y numbers, or an RLE object)"


def annotation_problem(annotation: dict[str, Any]) -> tuple[str, str] | None:
    """(field, problem) for the first optional field of ``annotation`` that its readers cannot use."""
    if "segmentation" in annotation and (problem := segmentation_problem(annotation["segmentation"])):
        return "segmentation", problem
    iscrowd = annotation.get("iscrowd", 0)
    if type(iscrowd) is not int or iscrowd not in (0, 1):
        return "iscrowd", f"{describe_value(iscrowd)} (allowed: 0 or 1)"
    area = annotation.get("area", 0)
    if not (_is_number(area) and area >= 0):
        return "area", f"{describe_value(area)} (allowed: a finite number of 0 or more)"
    return None


def repeated_id(entries: Iterable[dict[str, Any]]) -> tuple[int, int] | None:
    """(index, index of its first use) of the first entry whose ``id`` an earlier entry has, or None."""
    first_use: dict[int, int] = {}
    for index, entry in enumerate(entries):
        if (earlier := first_use.setdefault(entry["id"], index)) != index:
            return index, earlier
    return None


def has_training_box(annotations: Iterable[dict[str, Any]]) -> bool:
    """Whether an annotation is not a crowd: detectron2 trains only on images with one, and stops at a
    training set of none ("No valid data found")."""
    return any(not annotation.get("iscrowd", 0) for annotation in annotations)
