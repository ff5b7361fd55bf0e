"""Reading an image, one way: list the files, open one, bring it to a mode and a size, map pixels to the model.

Every image that enters ganforge from a file goes through ``open_image``
(training folders, translation pairs and domains, ``ganforge translate`` and
the translation page's uploads alike), so a picture is seen the same way in
training and at inference: upright by its EXIF orientation, 16-bit grayscale
scaled down to 8 bits (not clipped), RGBA and palettes converted, and refused
in one line when it is not an image, a decompression bomb, or over a pixel cap.
Every resize of data (files, and arrays such as an .npz or a torchvision
dataset at another ``--image-size``) is ``fit``'s one kernel: bicubic with
antialiasing, the shorter side to the size and the centre cropped (folders),
or stretched to a square (image-to-image pairs, as their reference code does).
``scale_images`` and ``to_uint8`` map uint8 pixels to a model's range and back.

The metrics bring generated samples to a feature extractor's input size with
a resize of their own (``metrics.features.to_shape``): that is part of how a
score is defined, not of how data are read.
"""

import collections
import os
import re
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps

from ganforge.errors import GanforgeError, first_line

# torchvision's IMG_EXTENSIONS (datasets/folder.py), as ImageFolder reads them; a test keeps the two equal.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")  # opened as 1 channel, the rest as 3
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grayscale PNGs open as one of these
DEFAULT_SIZE = 64  # typical_image_shape's answer for files none of which could be read


class UnreadableImage(GanforgeError):
    """A file (or upload) that cannot be read as an image, or is over a pixel cap: ``name`` says which,
    ``reason`` why."""

    def __init__(self, name: str, reason: str, message: str | None = None):
        super().__init__(message or f"cannot read {name} as an image: {reason}")
        self.name, self.reason = name, reason


def reason_of(error: BaseException) -> str:
    """Why PIL could not read an image, in one line, without the repr PIL names a stream by
    (<_io.BytesIO object at 0x7f...>: a heap address that means nothing to a person)."""
    return re.sub(r"\s*<[\w.]+ object at 0x[0-9a-fA-F]+>", "", first_line(error))


def check_pixels(image: Image.Image, name: str, max_pixels: int | None) -> None:
    """``UnreadableImage`` for an image over ``max_pixels`` (None: no cap but PIL's decompression-bomb check)."""
    if max_pixels is not None and image.width * image.height > max_pixels:
        reason = f"{image.width}x{image.height}, over the {max_pixels:,}-pixel cap"
        raise UnreadableImage(name, reason, f"{name} is {reason}: shrink it first")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a file with an image extension."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def walk_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` and its subfolders (links followed), in torchvision's ``make_dataset``
    order: folder by folder in sorted order, each folder's files sorted. One directory listing per folder, no
    stat per file: 50,000 files in a fifteenth of the time of a recursive glob."""
    found = []
    for parent, _, names in sorted(os.walk(folder, followlinks=True, onerror=raise_error)):
        found += [Path(parent, name) for name in sorted(names) if name.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def raise_error(error: OSError) -> None:
    raise error


def list_images(folder: Path, required: bool = True) -> list[Path]:
    """The image files under ``folder`` (and its subfolders), in ``walk_images`` order; with ``required``, a
    one-line error when there are none. An unreadable folder is a one-line error too."""
    try:
        files = walk_images(Path(folder))
    except OSError as error:
        raise GanforgeError(f"cannot read {error.filename or folder}: {error.strerror or error}") from None
    if required and not files:
        raise GanforgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    return files


def mode_of(channels: int) -> str:
    """The PIL mode images of ``channels`` (1 or 3) are read in."""
    return "L" if channels == 1 else "RGB"


def channels_of(image: Image.Image) -> int:
    """1 for a grayscale image (8 or 16 bits, with or without alpha), else 3."""
    return 1 if image.mode in GRAYSCALE_MODES else 3


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to 'L' or 'RGB', scaling 16-bit grayscale down to 8 bits rather than clipping it."""
    if image.mode in WIDE_MODES:
        image = Image.fromarray((np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8), "L")
    return image.convert(mode)


def open_image(
    source: Path | BinaryIO,
    mode: str,  # 'L' or 'RGB'
    name: str | None = None,  # how to call it in errors (a stream has no path)
    max_pixels: int | None = None,  # refuse images with more pixels than this (PIL's bomb check applies anyway)
) -> Image.Image:
    """The image at ``source`` (a file, or an open binary stream) in ``mode``, upright by its EXIF orientation;
    ``UnreadableImage`` (one line) for what cannot be read as an image."""
    name = name or str(source)
    try:
        with Image.open(source) as image:
            check_pixels(image, name, max_pixels)
            return to_mode(ImageOps.exif_transpose(image), mode)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(name, reason_of(error)) from None


def probe_image(source: Path | BinaryIO, name: str | None = None, max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) of the image at ``source``, from its header alone (no pixels decoded); ``UnreadableImage``
    as ``open_image`` would raise it."""
    name = name or str(source)
    try:
        with Image.open(source) as image:
            check_pixels(image, name, max_pixels)
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImage(name, reason_of(error)) from None


def fit(image: Image.Image, size: int, crop: bool = True) -> Image.Image:
    """The one resize of data: bicubic with antialiasing; ``crop``: the shorter side to ``size``, then the
    centre ``size`` x ``size``; else stretched to ``size`` x ``size`` whatever the aspect ratio."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    if image.size == (size, size):
        return image
    if not crop:
        return TF.resize(image, [size, size], InterpolationMode.BICUBIC, antialias=True)
    image = TF.resize(image, size, InterpolationMode.BICUBIC, antialias=True)
    return TF.center_crop(image, size)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """(C, H, W) uint8 of an 'L' or 'RGB' image."""
    array = np.array(image, dtype=np.uint8)  # a copy: PIL's buffer is read-only
    return torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())


def to_picture(image: torch.Tensor) -> Image.Image:
    """A (C, H, W) uint8 tensor as an 'L' or 'RGB' PIL image."""
    return Image.fromarray(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy())


def read_image(
    source: Path | BinaryIO,
    channels: int,
    size: int | None = None,  # None: its own size
    crop: bool = True,
    name: str | None = None,
    max_pixels: int | None = None,
) -> torch.Tensor:
    """(C, H, W) uint8: ``open_image``, then ``fit`` to ``size`` when given."""
    image = open_image(source, mode_of(channels), name, max_pixels)
    return to_tensor(fit(image, size, crop) if size else image)


def typical_image_shape(files: list[Path], looks: int = 101) -> tuple[int, int]:
    """(channels, shorter side) most common among up to ``looks`` files spread over the list (headers only).

    The most common shape, not the first file's: one huge or odd image (or a
    decompression bomb) sorting first must not decide the size of all the
    others. Grayscale is 1 channel, anything else 3.
    """
    shapes = collections.Counter()
    for path in files[:: max(1, len(files) // looks)][:looks]:
        try:
            with Image.open(path) as image:
                shapes[channels_of(image), min(image.size)] += 1
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return shapes.most_common(1)[0][0] if shapes else (3, DEFAULT_SIZE)


# ---------------------------------------------------------------- images in memory


def convert_channels(images: torch.Tensor, channels: int | None) -> torch.Tensor:
    """(N, C, H, W) uint8 images in ``channels`` (None: as they are): gray repeated into RGB, or RGB to gray by
    ITU-R 601 luma in PIL's own integer arithmetic, so a file converted by PIL and an array converted here agree."""
    if channels is None or channels == images.shape[1]:
        return images
    if channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(1, 3, 1, 1)  # PIL's L = R 299/1000 + ...
    return (((images.to(torch.int32) * weights).sum(1, keepdim=True) + 32768) >> 16).to(torch.uint8)


def resize_images(images: torch.Tensor, size: int, crop: bool = True) -> torch.Tensor:
    """(N, C, size, size) uint8: each of (N, C, H, W) uint8 images through ``fit``, the kernel files get."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(len(images), images.shape[1], size, size, dtype=torch.uint8)
    for index, image in enumerate(images):
        out[index] = to_tensor(fit(to_picture(image), size, crop))
    return out


def conform_images(images: torch.Tensor, image_size: int | None, channels: int | None) -> torch.Tensor:
    """(N, C, H, W) uint8 images in ``channels`` and, when given, at ``image_size`` square (``resize_images``)."""
    images = convert_channels(images, channels)
    return images if image_size is None else resize_images(images, image_size)


def scale_images(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """uint8 images -> float in a model's range ([0, 1] or [-1, 1])."""
    low, high = output_range
    return images.float() * ((high - low) / 255.0) + low


def to_uint8(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """A model's output in ``output_range`` -> uint8 in [0, 255]: ``scale_images``'s inverse, rounded."""
    low, high = output_range
    return ((images.float() - low) * (255.0 / (high - low))).round().clamp(0, 255).to(torch.uint8)
