"""Sliced Wasserstein distance on Laplacian-pyramid patches: a quality score that needs no trained network.

Karras et al. (2018), "Progressive Growing of GANs", section 5, compared image
sets this way: build each image's Laplacian pyramid (a 5x5 binomial filter,
from the full size down to 16 px), cut 128 random 7x7 patches per image from
each level, normalise every channel of a set's patches by that set's mean and
standard deviation, and at each level take the sliced Wasserstein distance
between the two sets of patches: the mean gap between the sorted projections
of both sets on 4 x 128 random unit directions. The fine levels score texture
and sharpness, the coarse ones larger shapes; small is close. Values are
reported x 1e3, per level and averaged, as in the paper and its code
(progressive_growing_of_gans/metrics/sliced_wasserstein.py), which this follows.

The score works on any number of channels and any image size of at least
16 px, which makes it the yardstick for colour folders that neither shipped
classifier fits and for which the Inception weights are not at hand. It
compares distributions of local patches, not whole images: it sees blur, noise
and a lack of variety clearly, a set that lacks some classes of objects less,
and, since each set is normalised by its own mean and spread, a uniform colour
cast hardly at all (docs/metrics.md has reference values).
Draws (patch positions, directions) come from ``seed``, so a score repeats.
"""

import torch
import torch.nn.functional as F

PATCH = 7  # patch side
PATCHES_PER_IMAGE = 128
REPEATS = 4  # sets of random directions
DIRECTIONS = 128  # directions per set
MIN_LEVEL = 16  # the pyramid stops at the last level of at least this many pixels

BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16  # OpenCV's pyrDown / pyrUp filter, one axis


def blur(images: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """The 5x5 binomial filter (times ``gain``) on every channel, with mirrored edges."""
    channels = images.shape[1]
    kernel = (BINOMIAL[:, None] * BINOMIAL[None, :] * gain).to(images).expand(channels, 1, 5, 5)
    return F.conv2d(F.pad(images, (2, 2, 2, 2), mode="reflect"), kernel, groups=channels)


def pyramid_down(images: torch.Tensor) -> torch.Tensor:
    """Half the size: blur, then keep every second row and column."""
    return blur(images)[:, :, ::2, ::2]


def pyramid_up(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Back to ``size``: zeros between the pixels, then the filter with gain 4 to keep the brightness."""
    n, c, h, w = images.shape
    spread = images.new_zeros(n, c, size[0], size[1])
    spread[:, :, ::2, ::2] = images
    return blur(spread, gain=4.0)


def levels(size: int) -> list[int]:
    """The pyramid's sizes (the shorter side) from ``size`` down to the last one of at least 16 px."""
    sizes = []
    while size >= MIN_LEVEL:
        sizes.append(size)
        size //= 2
    return sizes


def laplacian_pyramid(images: torch.Tensor, count: int) -> list[torch.Tensor]:
    """``count`` levels: each the detail lost by halving, then the last half-size image itself."""
    pyramid = [images]
    for _ in range(1, count):
        smaller = pyramid_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyramid_up(smaller, pyramid[-1].shape[-2:])
        pyramid.append(smaller)
    return pyramid


def random_patches(level: torch.Tensor, per_image: int, generator: torch.Generator) -> torch.Tensor:
    """(N * per_image, C * 7 * 7): ``per_image`` 7x7 patches at random places in each image of ``level``."""
    n, c, h, w = level.shape
    half = PATCH // 2
    ys = torch.randint(half, h - half, (n, per_image, 1, 1), generator=generator)
    xs = torch.randint(half, w - half, (n, per_image, 1, 1), generator=generator)
    offsets = torch.arange(-half, half + 1)
    rows = ys + offsets[None, None, :, None]  # (N, P, 7, 1)
    cols = xs + offsets[None, None, None, :]  # (N, P, 1, 7)
    image = torch.arange(n)[:, None, None, None]
    patches = level.permute(0, 2, 3, 1)[image, rows, cols]  # (N, P, 7, 7, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(n * per_image, c, PATCH, PATCH)


def normalise(patches: torch.Tensor) -> torch.Tensor:
    """Each channel to mean 0 and standard deviation 1 over all the set's patches, flattened to vectors."""
    mean = patches.mean(dim=(0, 2, 3), keepdim=True)
    std = patches.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-8)  # a flat set has none
    return ((patches - mean) / std).flatten(1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> float:
    """The mean distance between the sorted projections of two equal-sized sets of vectors on random unit
    directions (``REPEATS`` sets of ``DIRECTIONS``)."""
    distances = []
    for _ in range(REPEATS):
        directions = torch.randn(a.shape[1], DIRECTIONS, generator=generator, dtype=a.dtype)
        directions = directions / directions.norm(dim=0, keepdim=True)
        projected_a = (directions.T @ a.T).sort(dim=1).values  # (directions, vectors): each sort is contiguous
        projected_b = (directions.T @ b.T).sort(dim=1).values
        distances.append((projected_a - projected_b).abs().mean())
    return torch.stack(distances).mean().item()


def pyramid_patches(images: torch.Tensor, count: int, generator: torch.Generator, batch_size: int = 256) -> list:
    """Normalised patch vectors at each of ``count`` pyramid levels of uint8 ``images``, built in batches."""
    per_level = [[] for _ in range(count)]
    for batch in images.split(batch_size):
        for index, level in enumerate(laplacian_pyramid(batch.float(), count)):
            per_level[index].append(random_patches(level, PATCHES_PER_IMAGE, generator))
    return [normalise(torch.cat(patches)) for patches in per_level]


def swd(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> dict:
    """SWD x 1e3 between two sets of (N, C, H, W) uint8 images of one shape, per pyramid level (``swd_64``,
    ``swd_32``, ...) and averaged (``swd``). The larger set is cut to the smaller one's size."""
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(f"SWD compares images of one shape, not {tuple(real.shape[1:])} and {tuple(fake.shape[1:])}")
    size = min(real.shape[-2:])
    if size < MIN_LEVEL:
        raise ValueError(f"SWD needs images of at least {MIN_LEVEL} px a side, not {tuple(real.shape[-2:])}")
    count = min(len(real), len(fake))
    sizes = levels(size)
    generator = torch.Generator().manual_seed(seed)
    real_patches = pyramid_patches(real[:count], len(sizes), generator)
    fake_patches = pyramid_patches(fake[:count], len(sizes), generator)
    scores = {
        f"swd_{level}": 1e3 * sliced_wasserstein(a, b, generator)
        for level, a, b in zip(sizes, real_patches, fake_patches, strict=True)
    }
    return {"swd": sum(scores.values()) / len(scores)} | scores
