"""Budgets: how much of the machine's memory a dataset may hold, and whether a folder has the disk room to write."""

import os
import shutil
from pathlib import Path

from ganforge.errors import GanforgeError

MEMORY_FRACTION = 0.5  # data needing more than this share of RAM: a folder streams from its cache, others refused


def memory_budget() -> int | None:
    """Bytes of uint8 images a dataset may hold in memory: ``MEMORY_FRACTION`` of RAM (None: not known)."""
    try:
        return int(MEMORY_FRACTION * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): nothing to check against
        return None


def fits_in_memory(count: int, channels: int, height: int, width: int) -> bool:
    """Whether ``count`` uint8 images of (channels, height, width) stay within ``memory_budget()``."""
    budget = memory_budget()
    return budget is None or count * channels * height * width <= budget


def check_fits_in_memory(count: int, channels: int, height: int, width: int, what: str, hint: str) -> None:
    """Refuse, before allocating, images whose uint8 tensor would crowd out the machine's memory.

    ``what`` names the data in the message and ``hint`` says what to do instead.
    """
    if not fits_in_memory(count, channels, height, width):
        needed, total = count * channels * height * width, memory_budget() / MEMORY_FRACTION
        raise GanforgeError(
            f"{what}: {count:,} images at {channels}x{height}x{width} need {needed / 2**30:.1f} GiB in memory, "
            f"more than half of this machine's {total / 2**30:.1f} GiB; {hint}"
        )


def check_disk_room(folder: Path, needed: int, what: str) -> None:
    """Refuse at once, in one line, to write ``needed`` bytes of images into ``folder`` without room for them."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise GanforgeError(
            f"images too big for memory stream from the decode cache, and {what} them needs {needed / 2**30:.1f} "
            f"GiB free in {folder}, which has {free / 2**30:.1f} GiB: free some space, point $XDG_CACHE_HOME "
            "elsewhere, or use a smaller --image-size"
        )
