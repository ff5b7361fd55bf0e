"""Sampling: noise, images as uint8, and writing grids, .npz files and PNG folders."""

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from ganforge.checkpoint import load_generator
from ganforge.device import resolve_device
from ganforge.errors import GanforgeError


def sample_noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    """(n, z_dim) standard normal noise drawn on the CPU, so a seed means the same noise on every device."""
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))


def to_uint8(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """Generator output in ``output_range`` -> uint8 in [0, 255]."""
    low, high = output_range
    return ((images.float() - low) * (255.0 / (high - low))).round().clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def generate_images(generator: nn.Module, noise: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Run ``generator`` on (N, z_dim) noise in batches; returns (N, C, H, W) uint8 on the CPU."""
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()  # BatchNorm uses running statistics: samples do not depend on the batch
    try:
        images = [to_uint8(generator(z.to(device)), generator.output_range).cpu() for z in noise.split(batch_size)]
    finally:
        generator.train(was_training)
    return torch.cat(images)


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save (N, C, H, W) uint8 images as one PNG/JPEG grid, ``nrow`` per row (default: square)."""
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=0)  # (C', H', W') uint8; gray becomes 3 channels
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
    return Path(path)


def write_images(images: torch.Tensor, out: str | Path, labels: torch.Tensor | None = None) -> Path:
    """Write uint8 images where ``out`` says: a grid (.png/.jpg), an array (.npz) or one PNG each (folder).

    A path ending in '/' or naming an existing folder is a folder; .npz holds
    ``images`` (N, C, H, W) uint8 and, when given, ``labels`` (N,).
    """
    out_text, out = str(out), Path(out)
    try:
        if out_text.endswith(("/", "\\")) or out.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            digits = max(4, len(str(len(images) - 1)))
            for index, image in enumerate(images):
                array = image.permute(1, 2, 0).numpy()
                Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(out / f"{index:0{digits}d}.png")
        elif out.suffix.lower() == ".npz":
            arrays = {"images": images.numpy()}
            if labels is not None:
                arrays["labels"] = labels.numpy()
            np.savez_compressed(out, **arrays)
        elif out.suffix.lower() in (".png", ".jpg", ".jpeg"):
            save_grid(images, out)
        else:
            raise GanforgeError(f"--out {out_text!r}: use a .png/.jpg grid, an .npz file or a folder ending in '/'")
    except OSError as error:
        raise GanforgeError(f"cannot write {out_text}: {error.strerror or error}") from None
    return out


def generate(
    source: str | Path,
    n: int = 64,
    seed: int = 0,
    out: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 256,
) -> torch.Tensor:
    """Sample ``n`` images from a run directory or checkpoint; write them to ``out`` if given.

    Returns (n, C, H, W) uint8. The same seed gives the same images.
    """
    if n < 1:
        raise GanforgeError(f"--n must be at least 1, got {n}")
    generator = load_generator(source, resolve_device(device))
    images = generate_images(generator, sample_noise(n, generator.z_dim, seed), batch_size)
    if out is not None:
        write_images(images, out)
    return images
