"""Which errors of reading an image file say the image is at fault, and in what words.

The standard library and PIL only, so that a tool that loads no detectron2 (``mimdet.pretrain_mae``) names
a bad image in the same words as a run does.
"""

from __future__ import annotations

from PIL import Image

# The OSErrors with an errno that say the image file is at fault (missing, unreadable, a folder); PIL's own
# ("cannot identify image file", "image file is truncated", "broken data stream") have none, and a file of
# absurd size is PIL's DecompressionBombError, no OSError
IMAGE_FILE_ERRORS = (FileNotFoundError, IsADirectoryError, PermissionError)


def unreadable_image_line(file_name: object, error: BaseException) -> str | None:
    """``FILE: an image that cannot be read (why)``, or None for an error that is not the image's (the file
    system's trouble, EIO or ENOSPC, or no reading error at all)."""
    if not isinstance(error, (OSError, Image.DecompressionBombError)):
        return None
    if isinstance(error, OSError) and error.errno is not None and not isinstance(error, IMAGE_FILE_ERRORS):
        return None
    if isinstance(error, Image.UnidentifiedImageError):  # its message repeats the file's name
        reason = "not in a format PIL can identify"
    else:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"{file_name}: an image that cannot be read ({reason})"
