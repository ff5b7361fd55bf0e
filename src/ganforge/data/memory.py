"""Budgets: how much of the machine's memory a dataset may hold, and whether a folder has the disk room to write."""

import os
import re
import shutil
from pathlib import Path

from ganforge.errors import GanforgeError
from ganforge.files import TEMPORARY

MEMORY_FRACTION = 0.5  # data needing more than this share of RAM: a folder streams from its cache, others refused


def size_text(count: float) -> str:
    """Bytes as people read them: '256 bytes', '6.6 MiB', '107.3 GiB' (never '0.0 GiB')."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} bytes"


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
            f"{what}: {count:,} images at {channels}x{height}x{width} need {size_text(needed)} in memory, "
            f"more than half of this machine's {size_text(total)}; {hint}"
        )


def check_disk_room(folder: Path, needed: int, what: str) -> None:
    """Refuse at once, in one line, to write ``needed`` bytes of images into ``folder`` without room for them."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise GanforgeError(
            f"images too big for memory stream from the decode cache, and {what} them needs {size_text(needed)} "
            f"free in {folder}, which has {size_text(free)}: free some space, point $XDG_CACHE_HOME elsewhere, "
            "or use a smaller --image-size"
        )


SCRATCH = re.compile(r"\.decoding-(\d+)\.npy$")  # the scratch file a streamed decode writes: NAME.decoding-PID.npy


def scratch_path(path: Path) -> Path:
    """The scratch file this process decodes ``path`` into before it is complete (``remove_orphans`` can tell it
    from another's)."""
    return path.with_name(f"{path.stem}.decoding-{os.getpid()}.npy")


def remove_orphans(folder: Path) -> None:
    """Delete the scratch files (``scratch_path``) and half-written entries (``atomic_write``'s temporaries) in
    ``folder`` whose process is gone (killed mid-decode or mid-save: SIGKILL, out of memory, a power cut): each can
    be as big as a dataset, and would stay for ever."""
    try:
        candidates = [path for path in folder.iterdir() if SCRATCH.search(path.name) or TEMPORARY.match(path.name)]
    except OSError:
        return
    for path in candidates:
        match = SCRATCH.search(path.name) or TEMPORARY.match(path.name)
        if not process_alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (one that is not ours to signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True
