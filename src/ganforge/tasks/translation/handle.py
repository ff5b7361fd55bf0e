"""Translating images with a trained pix2pix or CycleGAN run: the handle ``load_translator`` gives, and files.

The translators are fully convolutional: an image of any size is padded (by
reflection) to a multiple of the network's stride, translated and cropped back.
``translate`` resizes each input to the run's training size first unless
``size=0`` asks for the image's own size, since a translator sees the world at
the scale it was trained on.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganforge.checkpoint import read_translator
from ganforge.data import IMAGE_EXTENSIONS, conform_images, scale_images, to_uint8
from ganforge.device import resolve_device
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.files import atomic_write, refuse_to_replace

MAX_PIXELS = 4096 * 4096  # an input larger than this is refused (a translator's memory grows with the area)


@torch.no_grad()
def translate_images(generator: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 -> (N, C_out, H, W) uint8 on the CPU, in eval mode (no dropout), any H and W.

    The images are converted to the generator's input channels and padded to a multiple of its stride.
    """
    device = next(generator.parameters()).device
    training = generator.training
    generator.eval()
    try:
        images = conform_images(images, None, generator.in_channels)
        height, width = images.shape[-2:]
        stride = generator.stride
        pad_h, pad_w = -height % stride, -width % stride
        x = scale_images(images.to(device), (-1.0, 1.0))
        if pad_h or pad_w:
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        out = generator(x.contiguous(memory_format=torch.channels_last))[..., :height, :width]
        return to_uint8(out, (-1.0, 1.0)).cpu()
    finally:
        generator.train(training)


@dataclass
class TrainedTranslator:
    """A trained translation run, read once: its translators by direction, its config and task."""

    generators: dict[str, nn.Module]  # 'AtoB' (and 'BtoA' for CycleGAN), eval mode
    config: dict  # the run's TrainConfig as a dict
    task: str  # 'pix2pix' or 'cyclegan'
    path: Path  # the checkpoint read

    def generator(self, direction: str = "AtoB") -> nn.Module:
        """The translator for ``direction``; a one-line error naming the ones this run has."""
        if direction not in self.generators:
            raise UsageError(
                f"a {self.task} run translates {' and '.join(self.generators)} only, not --direction {direction} "
                "(train with --direction BtoA for the other way)"
            )
        return self.generators[direction]

    def translate(self, images: torch.Tensor, direction: str = "AtoB") -> torch.Tensor:
        """(N, C, H, W) uint8 -> translated (N, C_out, H, W) uint8."""
        return translate_images(self.generator(direction), images)


def load_translator(source: str | Path, device: str = "auto", ema: bool = True) -> TrainedTranslator:
    """The translation run (directory or checkpoint) at ``source``, on ``device``; with ``ema`` (the default),
    the translators' moving averages when the run kept them.

    >>> translator = load_translator("runs/facades")
    >>> photos = translator.translate(label_maps)  # (N, C, H, W) uint8 in and out, any H and W
    """
    found = read_translator(source, resolve_device(device), ema)
    return TrainedTranslator(found["generators"], found["config"], found["task"], found["path"])


def input_files(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(file, name to write it under) of every image among ``inputs`` (files, and folders searched whole)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not files:
                raise GanforgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {item}")
            found += [(path, path.relative_to(item).with_suffix(".png")) for path in files]
        elif item.is_file():
            found.append((item, Path(item.stem + ".png")))
        else:
            raise GanforgeError(f"{item} does not exist")
    names = [name for _, name in found]
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise UsageError(f"two inputs would both be written to {twice}: translate them into separate --out folders")
    return found


def read_input(path: Path | BinaryIO, size: int, name: str | None = None) -> torch.Tensor:
    """(1, C, H, W) uint8 of ``path`` (a file, or an open binary stream called ``name``), resized to ``size``
    square unless 0; one line for a non-image or a huge one."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    name = name or str(path)
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise GanforgeError(
                    f"{name} is {image.width}x{image.height}, over the {MAX_PIXELS:,}-pixel cap: shrink it first"
                )
            image = image.convert("L" if image.mode in ("1", "L", "I;16", "I", "F") else "RGB")
            if size:
                image = TF.resize(image, [size, size], InterpolationMode.BICUBIC, antialias=True)
            return TF.pil_to_tensor(image)[None]
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise GanforgeError(f"cannot read {name} as an image: {first_line(error)}") from None


def translate(
    source: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    direction: str = "AtoB",
    size: int | None = None,  # None: the run's training size; 0: each image's own
    device: str = "auto",
    overwrite: bool = False,
    progress: bool = True,
    ema: bool = True,  # the translator's moving average when the run kept one
) -> list[Path]:
    """Translate image files and folders into PNGs in the folder ``out``; returns the files written."""
    from tqdm import tqdm

    translator = load_translator(source, device, ema)
    generator = translator.generator(direction)
    size = translator.config["image_size"] if size is None else size
    files = input_files(inputs)
    out = Path(out)
    targets = [out / name for _, name in files]
    refuse_to_replace(targets, overwrite)
    for (path, _), target in tqdm(list(zip(files, targets)), desc="translate", unit="image", disable=not progress):
        translated = translate_images(generator, read_input(path, size))[0]  # (C, H, W) uint8
        pixels = translated[0] if len(translated) == 1 else translated.permute(1, 2, 0)
        picture = Image.fromarray(pixels.numpy())
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GanforgeError(f"cannot write {target.parent}: {error.strerror or error}") from None
        atomic_write(target, lambda file, picture=picture: picture.save(file, format="PNG"), durable=False)
    return targets
