"""A dataset in memory (``ImageDataset``), and where ganforge keeps what it downloads and caches."""

import os
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class ImageDataset:
    """A whole dataset in memory (or memory-mapped from the decode cache)."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor | None  # (N,) int64, or None for unlabelled folders
    classes: list[str]  # class names, index = label
    description: str  # where the images came from, for the log
    streamed_from: Path | None = None  # the cache file ``images`` is memory-mapped from (too big for memory)

    def __len__(self) -> int:
        return self.images.shape[0]


def cache_home() -> Path:
    """ganforge's folder in the user's cache: $XDG_CACHE_HOME/ganforge, else ~/.cache/ganforge."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ganforge"
