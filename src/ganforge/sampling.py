"""Sampling: noise, labels, uint8 images from a generator, and grids, .npz files, PNG folders, latent walks and GIFs.

The pieces every command that samples a generator shares (``tasks/gan/handle.py``'s ``generate``,
``interpolate`` and labelled datasets, the training grids, the web page, the metrics).
"""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.utils import make_grid

from ganforge.data import to_uint8
from ganforge.errors import GanforgeError
from ganforge.files import atomic_write, refuse_to_replace
from ganforge.progress import progress_bar


def sample_noise(n: int, z_dim: int, seed: int, std: float = 1.0) -> torch.Tensor:
    """(n, z_dim) normal noise drawn on the CPU, so a seed means the same noise on every device.

    ``std`` scales the standard normal the generator was trained on: below 1 the samples are closer to the
    average and less varied (the truncation trick's trade, Brock et al. 2019), above 1 more varied and less
    typical. The same seed draws the same directions at every ``std``.
    """
    check_noise_std(std)
    noise = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
    return noise if std == 1.0 else noise * std


def check_noise_std(std: float) -> None:
    """One line for a noise scale that is not a positive, finite number."""
    if isinstance(std, bool) or not (isinstance(std, int | float) and math.isfinite(std) and std > 0):
        raise GanforgeError(f"--noise-std must be a positive number, got {std!r}")


def balanced_labels(n: int, num_classes: int, classes: Sequence[int] | None = None) -> torch.Tensor | None:
    """(n,) labels cycling through ``classes`` (default: every class), or None for an unconditional model.

    Cycling gives every class the same share of the samples, and one column per class in a grid
    ``len(classes)`` images wide.
    """
    if not num_classes:
        return None
    classes = torch.as_tensor(list(classes) if classes is not None else range(num_classes), dtype=torch.long)
    return classes[torch.arange(n) % len(classes)]


def grid_columns(n: int, num_classes: int) -> int:
    """Images per grid row: near-square, and for a conditional model with up to 16 classes a multiple of them.

    ``balanced_labels`` cycles through the classes, so with a multiple of them
    per row every column holds one class: 10 columns for digits, 9 (three
    per class) for 3 classes rather than 3 columns and 22 rows.
    """
    if not 0 < num_classes <= 16:
        return math.ceil(math.sqrt(n))
    return num_classes * max(1, round(math.sqrt(n) / num_classes))


def grid_size(n: int, num_classes: int) -> int:
    """The number of images near ``n`` that fills whole rows of ``grid_columns`` (a training run's fixed grid)."""
    columns = grid_columns(n, num_classes)
    return columns * max(1, round(n / columns))


def check_labels(generator: nn.Module, labels: torch.Tensor | None) -> None:
    """One-line errors for labels the generator cannot take."""
    num_classes = getattr(generator, "num_classes", 0)
    if labels is not None and not num_classes:
        raise GanforgeError("this generator is unconditional: it takes no --label")
    if labels is not None and len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < num_classes):
        raise GanforgeError(
            f"labels must be in [0, {num_classes - 1}] for this generator; got {labels.unique().tolist()}"
        )


@torch.no_grad()
def generate_images(
    generator: nn.Module,
    noise: torch.Tensor,  # (N, z_dim)
    batch_size: int = 256,
    labels: torch.Tensor | None = None,  # (N,) classes, for a conditional generator (default: balanced)
    dtype: torch.dtype = torch.uint8,  # a floating dtype: the generator's own output, in its output_range
) -> torch.Tensor:
    """Run ``generator`` on noise (and labels) in batches; returns (N, C, H, W) uint8 (or ``dtype``) on the CPU."""
    if dtype != torch.uint8 and not dtype.is_floating_point:
        raise GanforgeError(f"images are uint8 or floats in the generator's output range, not {dtype}")
    device = next(generator.parameters()).device
    if labels is None:
        labels = balanced_labels(len(noise), getattr(generator, "num_classes", 0))
    check_labels(generator, labels)
    was_training = generator.training
    generator.eval()  # BatchNorm uses running statistics: samples do not depend on the batch
    images = []
    try:
        with progress_bar(len(noise), "generate") as bar:
            for start in range(0, len(noise), batch_size):
                z = noise[start : start + batch_size].to(device)
                batch_labels = labels[start : start + batch_size].to(device) if labels is not None else None
                fake = generator(z) if batch_labels is None else generator(z, batch_labels)  # (B, C, H, W)
                fake = to_uint8(fake, generator.output_range) if dtype == torch.uint8 else fake.to(dtype)
                images.append(fake.cpu())
                bar.update(len(z))
    finally:
        generator.train(was_training)
    return torch.cat(images)


def grid_image(images: torch.Tensor, nrow: int | None = None) -> Image.Image:
    """(N, C, H, W) uint8 images as one PIL image, ``nrow`` per row (default: square), 2-pixel padding.

    Grayscale images give a grayscale (L) image: a third of the data of RGB,
    and a PNG that encodes several times faster.
    """
    nrow = nrow or math.ceil(math.sqrt(len(images)))
    grid = make_grid(images, nrow=nrow, padding=2, pad_value=0)  # (C', H', W') uint8; gray becomes 3 channels
    if images.shape[1] == 1:
        return Image.fromarray(grid[0].numpy())  # (H', W'): the three channels are equal
    return Image.fromarray(grid.permute(1, 2, 0).numpy())


MIN_FPS, MAX_FPS = 0.01, 100.0  # interpolate's frame rates that a GIF can hold
MAX_FRAMES = 10_000  # interpolate's --steps: over 8 minutes of GIF at 20 fps, refused before any work beyond
MAX_WALKS = 256  # interpolate's --n: walks side by side in each frame
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # grid files, by suffix


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Save (N, C, H, W) uint8 images as one PNG/JPEG grid, ``nrow`` per row (default: square); atomically."""
    grid = grid_image(images, nrow)
    return atomic_write(path, lambda file: grid.save(file, format=IMAGE_FORMATS.get(Path(path).suffix.lower(), "PNG")))


def is_folder_output(out: str | Path) -> bool:
    """Whether ``out`` names a folder of PNGs: a path ending in '/' or an existing folder."""
    return str(out).endswith(("/", "\\")) or Path(out).is_dir()


def png_paths(folder: Path, count: int) -> list[Path]:
    """The files a folder of ``count`` images is written to: 0000.png, 0001.png, ..."""
    digits = max(4, len(str(count - 1)))
    return [folder / f"{index:0{digits}d}.png" for index in range(count)]


def output_paths(out: str | Path, count: int) -> list[Path]:
    """Every file ``write_images`` would write for ``count`` images at ``out``."""
    return png_paths(Path(out), count) if is_folder_output(out) else [Path(out)]


def write_images(
    images: torch.Tensor,
    out: str | Path,
    labels: torch.Tensor | None = None,
    nrow: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write uint8 images where ``out`` says: a grid (.png/.jpg), an array (.npz) or one PNG each (folder).

    A path ending in '/' or naming an existing folder is a folder; .npz holds
    ``images`` (N, C, H, W) uint8 and, when given, ``labels`` (N,). A grid has
    ``nrow`` images per row (default: square). An existing file is replaced
    only with ``overwrite``; every file is written whole or not at all.
    """
    out_text, out, folder = str(out), Path(out), is_folder_output(out)
    if not folder and out.suffix.lower() not in (".npz", *IMAGE_FORMATS):
        raise GanforgeError(f"--out {out_text!r}: use a .png/.jpg grid, an .npz file or a folder ending in '/'")
    paths = output_paths(out_text, len(images))
    refuse_to_replace(paths, overwrite)
    if folder:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GanforgeError(f"cannot write {out_text}: {error.strerror or error}") from None
        for path, image in zip(paths, images):
            picture = Image.fromarray(image[0].numpy() if image.shape[0] == 1 else image.permute(1, 2, 0).numpy())
            atomic_write(path, lambda file, picture=picture: picture.save(file, format="PNG"), durable=False)
    elif out.suffix.lower() == ".npz":
        arrays = {"images": images.numpy()} | ({"labels": labels.numpy()} if labels is not None else {})
        atomic_write(out, lambda file: np.savez_compressed(file, **arrays))
    else:
        save_grid(images, out, nrow)
    return out


def class_folder_names(classes: list[str], num_classes: int) -> list[str]:
    """Folder names that sort in label order, as ImageFolder reads them back.

    The training data's class names when they sort that way and are safe as
    folder names, else zero-padded label numbers in front of them.
    """
    digits = len(str(num_classes - 1))
    if len(classes) != num_classes:  # class names unknown: the label numbers
        return [f"{i:0{digits}d}" for i in range(num_classes)]
    names = [str(name) for name in classes]
    safe = all(name and "/" not in name and "\\" not in name and name not in (".", "..") for name in names)
    if safe and names == sorted(names) and len(set(names)) == len(names):
        return names
    return [f"{i:0{digits}d}" + (f"-{name}" if safe else "") for i, name in enumerate(names)]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation from ``a`` (t=0, exactly) to ``b`` (t=1, exactly) along the last dimension.

    Gaussian noise in many dimensions lives near a sphere of radius sqrt(z_dim);
    the straight line between two such points cuts through the middle, where
    the generator saw no noise in training (the midpoint is about 0.7 times as
    long). Slerp follows the great circle instead (White, "Sampling Generative
    Networks", 2016): between rows of equal norm, every point keeps that norm.
    Rows that are (nearly) parallel are interpolated linearly.
    """
    unit_a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    unit_b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    omega = torch.acos((unit_a * unit_b).sum(-1, keepdim=True).clamp(-1.0, 1.0))  # angle between rows, (..., 1)
    sin_omega = torch.sin(omega)
    # Coefficients first, then the products: sin(omega) / sin(omega) is exactly 1, so the ends are exact.
    spherical = (torch.sin((1.0 - t) * omega) / sin_omega) * a + (torch.sin(t * omega) / sin_omega) * b
    return torch.where(sin_omega > 1e-6, spherical, (1.0 - t) * a + t * b)


def latent_loop(keyframes: torch.Tensor, steps: int) -> torch.Tensor:
    """(K, ..., z_dim) keyframes -> (steps, ..., z_dim): a closed slerp loop through them, starting at the first.

    The last frame leads back to the first, so an animation of the loop repeats without a jump.
    """
    count = len(keyframes)
    frames = []
    for frame in range(steps):
        segment, remainder = divmod(frame * count, steps)  # integers: keyframes fall on exact frames
        frames.append(slerp(keyframes[segment], keyframes[(segment + 1) % count], remainder / steps))
    return torch.stack(frames)


def interpolation_frames(
    generator: nn.Module, steps: int = 60, n: int = 8, seed: int = 0, keyframes: int = 4, batch_size: int = 256
) -> list[Image.Image]:
    """``steps`` grids of ``n`` latent walks, each a closed slerp loop through ``keyframes`` random points.

    An unconditional generator gives one image per walk (up to 8 a row); a
    conditional one gives one row per class, column j following walk j, so
    each column shows one style across the classes.
    """
    num_classes = getattr(generator, "num_classes", 0)
    keys = sample_noise(keyframes * n, generator.z_dim, seed).view(keyframes, n, generator.z_dim)
    path = latent_loop(keys, steps)  # (steps, n, z_dim)
    labels = None
    if num_classes:
        path = path[:, None].expand(steps, num_classes, n, generator.z_dim)  # (steps, classes, n, z_dim)
        labels = torch.arange(num_classes).repeat_interleave(n).repeat(steps)  # class of each row, every frame
    per_frame = n * max(num_classes, 1)
    noise = path.reshape(-1, generator.z_dim)  # (steps * per_frame, z_dim)
    images = generate_images(generator, noise, batch_size, labels)  # (steps * per_frame, C, H, W)
    nrow = n if num_classes else min(n, 8)
    return [grid_image(frame, nrow) for frame in images.split(per_frame)]


def save_gif(frames: list[Image.Image], path: str | Path, fps: float = 20.0) -> Path:
    """Write PIL frames as an animated GIF that loops forever (atomically)."""
    options = dict(format="GIF", save_all=True, append_images=frames[1:], duration=1000 / fps, loop=0)
    return atomic_write(path, lambda file: frames[0].save(file, **options))
