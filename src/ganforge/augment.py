"""Differentiable augmentation (DiffAugment; Zhao et al. 2020) for data-efficient GAN training.

The discriminator sees every image, real or fake, through the same random
augmentations, and the generator's gradient flows back through them, so the
generator is not pushed to reproduce the augmentations. Each function takes a
float batch (B, C, H, W) and draws its own random parameters per image; all run
batched on the images' device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ganforge.lazy import LazyModule

if TYPE_CHECKING:
    from torch import Tensor

# Imported on first use, so that DEFAULT_POLICY and parse_policy (used by TrainConfig) load without torch.
torch = LazyModule("torch")
F = LazyModule("torch.nn.functional")


def _per_image(images: Tensor, generator=None) -> Tensor:
    """(B, 1, 1, 1) uniform [0, 1) draws, one per image."""
    return torch.rand(images.shape[0], 1, 1, 1, device=images.device, dtype=images.dtype, generator=generator)


def brightness(images: Tensor) -> Tensor:
    """Add one offset in [-0.5, 0.5) per image."""
    return images + (_per_image(images) - 0.5)


def saturation(images: Tensor) -> Tensor:
    """Scale each image's distance from its gray value by a factor in [0, 2) (a no-op on grayscale)."""
    gray = images.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (images - gray) * (_per_image(images) * 2) + gray


def contrast(images: Tensor) -> Tensor:
    """Scale each image's distance from its mean by a factor in [0.5, 1.5)."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (images - mean) * (_per_image(images) + 0.5) + mean


def translation(images: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to ``ratio`` of its size in x and y, filling with zeros."""
    batch, _, height, width = images.shape
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (batch, 1, 1), device=images.device)
    dx = torch.randint(-shift_x, shift_x + 1, (batch, 1, 1), device=images.device)
    rows = torch.arange(height, device=images.device).view(1, height, 1) + dy  # (B, H, 1) source row
    cols = torch.arange(width, device=images.device).view(1, 1, width) + dx  # (B, 1, W) source column
    # Index a zero-padded copy: sources outside the image land on the padding.
    padded = F.pad(images, (1, 1, 1, 1))  # (B, C, H + 2, W + 2)
    rows, cols = (rows + 1).clamp(0, height + 1), (cols + 1).clamp(0, width + 1)
    index = (rows * (width + 2) + cols).flatten(1)  # (B, H * W) into the flattened padded image
    flat = padded.flatten(2)  # (B, C, (H + 2) * (W + 2))
    gathered = flat.gather(2, index[:, None, :].expand(-1, images.shape[1], -1))
    return gathered.view_as(images)


def cutout(images: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` times the image size per image, centred anywhere in the image."""
    batch, _, height, width = images.shape
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    centre_y = torch.randint(0, height + (1 - size_y % 2), (batch, 1, 1), device=images.device)
    centre_x = torch.randint(0, width + (1 - size_x % 2), (batch, 1, 1), device=images.device)
    top, left = centre_y - size_y // 2, centre_x - size_x // 2  # (B, 1, 1): may lie outside the image
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    inside = (rows >= top) & (rows < top + size_y) & (cols >= left) & (cols < left + size_x)  # (B, H, W)
    return images * (~inside).to(images.dtype)[:, None]  # (B, 1, H, W) mask broadcast over channels


AUGMENTATIONS = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}
DEFAULT_POLICY = "color,translation,cutout"  # the paper's choice for small datasets


def parse_policy(policy: str) -> tuple[str, ...]:
    """'color,translation' -> ('color', 'translation'); raises ValueError naming an unknown part."""
    parts = tuple(part.strip() for part in policy.split(",") if part.strip())
    unknown = [part for part in parts if part not in AUGMENTATIONS]
    if unknown or not parts:
        raise ValueError(
            f"unknown DiffAugment policy {policy!r}; use a comma-separated subset of {', '.join(AUGMENTATIONS)}"
        )
    return parts


def diff_augment(images: Tensor, policy: tuple[str, ...] | str = DEFAULT_POLICY) -> Tensor:
    """Apply every augmentation of ``policy`` to a (B, C, H, W) batch; differentiable in ``images``."""
    for part in parse_policy(policy) if isinstance(policy, str) else policy:
        for augmentation in AUGMENTATIONS[part]:
            images = augmentation(images)
    return images.contiguous(memory_format=torch.channels_last)
