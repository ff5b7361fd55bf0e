"""Splits and batches: the share of a dataset held out for evaluation, and the batch order of every step."""

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from ganforge.data.dataset import ImageDataset
from ganforge.data.memory import check_disk_room, fits_in_memory, remove_orphans, scratch_path
from ganforge.errors import GanforgeError, first_line

log = logging.getLogger("ganforge")

STREAM_CHUNK = 4096  # images copied at a time between memory-mapped files
HOLDOUT_SEED = 20261124  # fixed, so every run on the same data holds out the same images
MIRROR_STREAM = 2**40  # offsets --mirror's random stream from the batch order's


def split_holdout(dataset: ImageDataset, fraction: float) -> tuple[ImageDataset, ImageDataset]:
    """(training part, held-out part): a fixed random ``fraction`` of the images is kept out of training.

    A part of streamed images (``ImageDataset.streamed_from``) too big for memory is itself written once
    beside the cache entry and streamed from there (``streamed_part``).
    """

    def part(indices: torch.Tensor, what: str, tag: str) -> ImageDataset:
        labels = dataset.labels[indices] if dataset.labels is not None else None
        description, source = f"{dataset.description}, {what}", dataset.streamed_from
        if source is None or fits_in_memory(len(indices), *dataset.images.shape[1:]):
            return ImageDataset(dataset.images[indices], labels, dataset.classes, description)
        path = source.with_name(f"{source.stem}-holdout{fraction:g}-{tag}.npy")
        return ImageDataset(streamed_part(dataset.images, indices, path), labels, dataset.classes, description, path)

    kept, held = holdout_indices(len(dataset), fraction)
    return part(kept, f"{len(kept):,} for training", "train"), part(held, f"{len(held):,} held out", "held")


def streamed_part(images: torch.Tensor, indices: torch.Tensor, path: Path) -> torch.Tensor:
    """``images[indices]`` without holding it in memory: written once to ``path`` (an .npy file), in chunks,
    and returned memory-mapped from it (copy-on-write); a later call with the same ``path`` reads it at once."""
    shape = (len(indices), *images.shape[1:])
    if path.is_file():
        try:
            array = np.load(path, mmap_mode="c")
            if array.shape == shape and array.dtype == np.uint8:
                return torch.from_numpy(array)
        except (OSError, ValueError) as error:
            log.warning(f"discarding the unreadable {path} ({first_line(error)}); writing it again")
    scratch = scratch_path(path)
    try:
        remove_orphans(path.parent)
        check_disk_room(path.parent, math.prod(shape), "splitting")
        array = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=shape)
        for start in range(0, len(indices), STREAM_CHUNK):
            array[start : start + STREAM_CHUNK] = images[indices[start : start + STREAM_CHUNK]].numpy()
        array.flush()
        del array
        os.replace(scratch, path)
    except OSError as error:
        raise GanforgeError(f"cannot write {path}: {error.strerror or first_line(error)}") from None
    finally:
        scratch.unlink(missing_ok=True)
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def holdout_indices(count: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out): ascending indices of ``split_holdout``'s two parts of ``count`` images."""
    held_count = round(count * fraction)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return order[held_count:].sort().values, order[:held_count].sort().values


class EpochSampler:
    """Batch indices as a pure function of the step.

    Each epoch is a fresh permutation drawn from (seed, epoch); the last partial
    batch is dropped. A run resumed at step k therefore sees exactly the
    batches an uninterrupted run would.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int):
        if num_images < batch_size:
            raise GanforgeError(f"the dataset has {num_images} images, fewer than --batch-size {batch_size}")
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self.steps_per_epoch = num_images // batch_size
        self._epoch, self._order = -1, None
        self._flips_epoch, self._flips = -1, None

    def indices(self, step: int) -> torch.Tensor:
        """The (batch_size,) dataset indices of global step ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.num_images, generator=generator)
        start = position * self.batch_size
        return self._order[start : start + self.batch_size]

    def flips(self, step: int) -> torch.Tensor:
        """(batch_size,) bools: which of step ``step``'s images to mirror (``--mirror``), half of them at random,
        drawn per epoch from a stream of their own, so that the order of the images is the same with or without."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._flips_epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + MIRROR_STREAM)
            self._flips_epoch, self._flips = epoch, torch.rand(self.num_images, generator=generator) < 0.5
        start = position * self.batch_size
        return self._flips[start : start + self.batch_size]
