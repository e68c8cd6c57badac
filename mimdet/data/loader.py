"""A config's data loader whose images, when one cannot be read, fail the run in one line naming the file.

detectron2's ``DatasetMapper`` reads each image as the loader asks for it, so a missing, truncated or
corrupt file in a dataset of 118k images surfaces minutes or hours into a run, as PIL's error (a
truncated JPEG's does not even name the file) inside a data-loader worker's traceback. Checking every
file before the run would cost as long as reading the dataset once; instead the mapper is wrapped, and
the first image that does not read becomes a ``DatasetError`` with the file, the reason and the dataset.
The config is not changed (a run's identity is its config's content): the wrapper is put in place at
run time, around whatever mapper the config builds.
"""

from __future__ import annotations

import re
from typing import Any

from detectron2.config import instantiate
from detectron2.data.detection_utils import SizeMismatchError
from omegaconf import DictConfig
from PIL import Image

from mimdet.data.image_errors import unreadable_image_line
from mimdet.data.registry import DatasetError


class NamingImageErrors:
    """A mapper that calls ``mapper`` and turns an image that cannot be read into a ``DatasetError``."""

    def __init__(self, mapper: Any, dataset: str) -> None:
        self.mapper = mapper
        self.dataset = dataset

    def __call__(self, dataset_dict: dict[str, Any]) -> Any:
        file_name = dataset_dict.get("file_name", "?")
        try:
            return self.mapper(dataset_dict)
        except SizeMismatchError as error:  # "... got (120, 128), expect (116, 128). Please check ..."
            shapes = re.search(r"got \(.*?\), expect \(.*?\)", str(error))
            raise DatasetError(
                f"{file_name}: its height and width are not those its annotation gives "
                f"({shapes.group(0) if shapes else error}) in dataset '{self.dataset}'"
            ) from None
        except (OSError, Image.DecompressionBombError) as error:
            line = unreadable_image_line(file_name, error)
            if line is None:
                raise  # the file system's trouble (EIO, ENOSPC...), not the image's
            raise DatasetError(f"{line} in dataset '{self.dataset}'") from None


def build_loader(section: DictConfig) -> Any:
    """The loader a ``dataloader.train`` / ``dataloader.test`` section describes, its mapper wrapped."""
    section = section.copy()
    section.mapper = NamingImageErrors(instantiate(section.mapper), str(section.dataset.names))
    return instantiate(section)


def worker_exception_line(error: BaseException) -> str | None:
    """The last line of the traceback a data-loader worker's error carries (``ValueError: image has wrong
    mode``), or None for an error no worker raised: torch re-raises it in the main process as ``Caught X in
    DataLoader worker process N`` followed by the whole worker's traceback, ~2 KB for one line's news."""
    message = str(error)
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return None
    return message.strip().splitlines()[-1]


def worker_error_line(error: BaseException) -> str:
    """An error's message, or, for one a data-loader worker raised, its last line's message: what the
    worker's error said."""
    last = worker_exception_line(error)
    if last is None:
        return str(error)
    return last.split(": ", 1)[1] if ": " in last else last
