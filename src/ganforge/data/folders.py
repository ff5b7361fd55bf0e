"""Folders of images: found (subfolders are classes), decoded once into one uint8 tensor, through the decode cache.

A large folder is decoded once into a cache entry keyed by its files' names,
sizes and modification times (``cached_folder``), so later runs start at once;
a folder whose images would fill more than half the memory is streamed from
that entry, memory-mapped, rather than read into memory (``decode_folder``).
Every image is read by ``images.read_image``, as everywhere in ganforge.
"""

import hashlib
import logging
import math
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ganforge.data.dataset import ImageDataset, cache_home
from ganforge.data.images import (
    IMAGE_EXTENSIONS,
    UnreadableImage,
    is_image_file,
    read_image,
    typical_image_shape,
    walk_images,
)
from ganforge.data.memory import check_disk_room, fits_in_memory, remove_orphans, scratch_path
from ganforge.errors import GanforgeError, first_line
from ganforge.files import atomic_write

log = logging.getLogger("ganforge")

FOLDER_IMAGE_SIZE = 64  # default --image-size for folders of larger images (smaller ones train at their own)
FOLDER_CACHE_MIN = 1000  # folders of at least this many images are decoded once, into the decode cache
FOLDER_CACHE_FORMAT = 1  # part of the cache key: a new decode policy makes new entries


def find_images(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Image files under ``root``; each top-level subfolder is a class, as in ImageFolder.

    Returns (files, labels, classes); labels is None when ``root`` has no class
    subfolders and its images lie directly inside it.
    """
    try:
        return scan_image_folder(root)
    except OSError as error:
        raise GanforgeError(f"cannot read {error.filename or root}: {error.strerror or error}") from None


def scan_image_folder(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """``find_images`` without the error translation."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, classes = [], [], []
    for class_dir in class_dirs:  # torchvision's ImageFolder, less hidden folders and folders without images
        class_files = walk_images(class_dir)
        if class_files:
            labels += [len(classes)] * len(class_files)
            classes.append(class_dir.name)
            files += class_files
    loose = sorted(p for p in root.iterdir() if is_image_file(p))
    if classes:
        if loose:
            log.warning(
                f"ignoring {len(loose)} images directly in {root}: with class subfolders, images belong in them"
            )
        return files, labels, classes
    return loose, None, []


def load_image_folder(
    root: Path, image_size: int | None, channels: int | None, largest: int | None = None
) -> ImageDataset:
    """Decode every image under ``root``, resized (shorter side) and center-cropped to ``image_size``.

    Unreadable files are skipped with a warning naming each one. ``channels``
    None takes the most common mode (grayscale -> 1, otherwise 3) and
    ``image_size`` None the most common shorter side (``typical_image_shape``);
    with ``largest``, that size only where it is at most ``largest`` and the
    convolutional models can be built for it (``trainable_size``), else ``largest``.
    A folder of ``FOLDER_CACHE_MIN`` images or more is decoded once, with a
    progress bar, into the decode cache (``cached_folder``); later loads of the
    same files at the same size start from it. A folder too big for memory
    streams from its cache entry (``decode_folder``).
    """
    files, labels, classes = find_images(root)
    if not files:
        raise GanforgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
    if channels is None or image_size is None:
        typical_channels, typical_size = typical_image_shape(files)
        if image_size is None and largest is not None:
            typical_size = typical_size if typical_size <= largest and trainable_size(typical_size) else largest
        channels, image_size = channels or typical_channels, image_size or typical_size
    images, kept, streamed = decode_folder(root, files, channels, image_size)
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.int64) if labels else None
    description = f"image folder {root}, {len(kept):,} images, {len(classes) or 'no'} classes"
    return ImageDataset(images, label_tensor, classes, description, streamed)


def decode_folder(root: Path, files: list[Path], channels: int, image_size: int):
    """(images, indices of the files they came from, the cache file they stream from or None) of ``files``.

    Decoded into memory, through the decode cache for ``FOLDER_CACHE_MIN`` files or more. Where the images
    would need more than ``MEMORY_FRACTION`` of the memory they are decoded into the cache entry and read
    from it memory-mapped, page by page as batches need them: the operating system keeps what fits cached.
    """
    if fits_in_memory(len(files), channels, image_size, image_size):
        if len(files) >= FOLDER_CACHE_MIN:
            return *cached_folder(root, files, channels, image_size)[:2], None
        return *decode_images(files, channels, image_size), None
    needed = len(files) * channels * image_size**2
    log.info(
        f"{root}: {len(files):,} images at {channels}x{image_size}x{image_size} need {needed / 2**30:.1f} GiB, "
        "more than half the memory: streaming them from a memory-mapped decode cache"
    )
    return cached_folder(root, files, channels, image_size, stream=True)


def decode_images(
    files: list[Path], channels: int, image_size: int, progress: bool = False, out: torch.Tensor | None = None
):
    """(images (N, C, S, S) uint8, indices of the files they came from): every readable file through
    ``read_image`` (the shorter side to ``image_size``, centre-cropped); each unreadable one is skipped with a
    warning naming it. With ``out`` (len(files), C, S, S), the images are written into it and a view of its
    first N rows returned."""
    images = torch.empty(len(files), channels, image_size, image_size, dtype=torch.uint8) if out is None else out
    kept = []
    for index, path in enumerate(tqdm(files, desc="decode", unit="image", disable=not progress, leave=False)):
        try:
            images[len(kept)] = read_image(path, channels, image_size)
        except UnreadableImage as error:
            log.warning(f"skipping unreadable image {path}: {error.reason}")
            continue
        kept.append(index)
    if not kept:
        raise GanforgeError(f"none of the {len(files)} image files in {files[0].parent} could be read")
    if len(kept) == len(files):
        return images, kept
    return (images[: len(kept)].clone() if out is None else images[: len(kept)]), kept


def cached_folder(root: Path, files: list[Path], channels: int, image_size: int, stream: bool = False):
    """``decode_images`` once per folder content and size: the result is saved under the cache folder
    (``cache_home()/folders``), keyed by every file's path, size and modification time and by the size and
    channels, so that a changed, added or removed file means a new decode. An entry that does not load (a write
    cut short) is discarded with a warning and rebuilt; a cache that cannot be written costs time only.
    Returns (images, indices of the files they came from, the entry's path).

    With ``stream`` the images never sit in memory whole: they are decoded into a memory-mapped scratch file,
    saved as the entry from there, and returned memory-mapped from the entry (copy-on-write: the entry is
    never changed). The cache must then have room for them, twice while decoding, or the load fails at once.
    """
    path = folder_cache_path(root, files, channels, image_size)
    remove_orphans(path.parent)  # what a decode killed mid-way left, no one's now: before any room is counted
    if path.is_file():
        try:
            entry = torch.load(path, weights_only=True, mmap=stream)
            images, kept = entry["images"], entry["kept"]
            if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (channels, image_size, image_size):
                raise ValueError(f"it holds {images.dtype} images of {tuple(images.shape[1:])}")
            if len(images) != len(kept) or not set(kept) <= set(range(len(files))):
                raise ValueError("its images do not match its list of files")
            log.info(f"decoded images from the cache {path}")
            if len(kept) < len(files):
                log.warning(f"{len(files) - len(kept)} unreadable images in {root} skipped (as when first decoded)")
            return images, kept, path
        except Exception as error:  # torch raises RuntimeError, EOFError, pickle and zip errors for a cut-short file
            log.warning(f"discarding the unreadable decode cache {path} ({first_line(error)}); decoding again")
            path.unlink(missing_ok=True)
    log.info(f"decoding {len(files):,} images in {root} once, into the cache {path}")
    if stream:
        return *decode_streamed(path, files, channels, image_size), path
    images, kept = decode_images(files, channels, image_size, progress=sys.stderr.isatty())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save({"images": images, "kept": kept}, file), durable=False)
        remove_stale_entries(path)
    except (OSError, GanforgeError) as error:
        log.warning(f"could not cache the decoded images: {first_line(error)}")
    return images, kept, path


def decode_streamed(path: Path, files: list[Path], channels: int, image_size: int):
    """``cached_folder``'s decode of images too big for memory: into a memory-mapped scratch file beside the
    entry ``path``, saved as the entry, and returned memory-mapped from it."""
    shape = (len(files), channels, image_size, image_size)
    scratch = scratch_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_disk_room(path.parent, 2 * math.prod(shape), "decoding")
        out = torch.from_numpy(np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=shape))
        images, kept = decode_images(files, channels, image_size, progress=sys.stderr.isatty(), out=out)
        atomic_write(path, lambda file: torch.save({"images": images, "kept": kept}, file), durable=False)
        remove_stale_entries(path)
        return torch.load(path, weights_only=True, mmap=True)["images"], kept
    except OSError as error:
        raise GanforgeError(
            f"cannot stream {len(files):,} images through the decode cache {path.parent}: "
            f"{error.strerror or first_line(error)}"
        ) from None
    finally:
        scratch.unlink(missing_ok=True)


def remove_stale_entries(path: Path) -> None:
    """Delete the cache files of ``path``'s folder at ``path``'s size and channels that are not ``path``'s: the
    entries (and streamed parts) of the folder's earlier contents."""
    for older in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*"):
        if not older.name.startswith(path.stem) and ".decoding-" not in older.name:
            older.unlink(missing_ok=True)


def folder_cache_path(root: Path, files: list[Path], channels: int, image_size: int) -> Path:
    """``cache_home()/folders/<name>-<folder hash>-<C>x<S>-<content hash>.pt`` for these files of ``root``."""
    place = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    content = hashlib.sha256(f"{FOLDER_CACHE_FORMAT} {channels} {image_size}\n".encode())
    for file in files:
        stat = file.stat()
        content.update(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    name = "".join(c if c.isalnum() or c in "._" else "_" for c in root.resolve().name)[:40] or "folder"
    return cache_home() / "folders" / f"{name}-{place}-{channels}x{image_size}-{content.hexdigest()[:16]}.pt"


def trainable_size(size: int) -> bool:
    """Whether dcgan and resnet build for ``size`` px from a base of 7 px or fewer (28, 32, 48, 64, ...)."""
    from ganforge.models.layers import base_resolution

    try:
        return base_resolution(size)[0] <= 7
    except ValueError:
        return False
