"""A trained translation run (pix2pix, CycleGAN), loaded: ``TrainedTranslator`` (what ``ganforge.load``
returns for one), and ``translate``, which writes the translations of image files and folders.

The translators are fully convolutional: an image of any size is padded (by
reflection) to a multiple of the network's stride, translated and cropped back.
``translate`` resizes each input to the run's training size first unless
``size=0`` asks for the image's own size, since a translator sees the world at
the scale it was trained on.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.checkpoint import generator_weights, rebuild_generators
from ganforge.data import conform_images, list_images, read_image, scale_images, to_uint8
from ganforge.data.images import UnreadableImage, fit, mode_of, open_image, probe_image, to_picture, to_tensor
from ganforge.errors import GanforgeError, UsageError, out_of_memory
from ganforge.files import atomic_write, refuse_to_replace
from ganforge.progress import progress_bar, progress_shown
from ganforge.tasks import Trained, load
from ganforge.tasks.translation import SIDE_BY_SIDE

log = logging.getLogger("ganforge")

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
    except (MemoryError, RuntimeError) as error:  # a size the caps allow, on a machine with less memory
        if not out_of_memory(error):
            raise
        what = "an image" if len(images) == 1 else f"{len(images)} images"
        shape = f"{images.shape[-1]}x{images.shape[-2]}"
        raise GanforgeError(f"not enough memory to translate {what} of {shape}: translate at a smaller size") from None
    finally:
        generator.train(training)


@dataclass
class TrainedTranslator(Trained):
    """A trained translation run, read once: its translators by direction, its config and task. It translates;
    ``evaluate``, ``app`` and ``export`` score, serve and export it.

    >>> translator = ganforge.load("runs/facades")
    >>> photos = translator.translate(label_maps)  # (N, C, H, W) uint8 in and out, any H and W
    >>> photos.shape == label_maps.shape
    True
    """

    generators: dict[str, nn.Module]  # 'AtoB' (and 'BtoA' for CycleGAN), eval mode
    config: dict  # the run's TrainConfig as plain data, its task's settings under the task's name
    task: str  # its TASKS name
    path: Path  # the checkpoint read
    description: dict  # model, generator_args (by direction), step, ema: what export writes as metadata
    export_formats: ClassVar[tuple[str, ...]] = ("pt2", "onnx", "safetensors", "hub")

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path: Path, device: torch.device, ema: bool) -> "TrainedTranslator":
        """The handle of a translation checkpoint (or exported folder): with ``ema``, the averages when kept."""
        weights, averaged = generator_weights(checkpoint, ema, path)
        generators = rebuild_generators(checkpoint, weights, path, device)
        config = dict(checkpoint.get("config") or {})
        description = {
            "model": checkpoint["model"],
            "generator_args": dict(checkpoint["generator_args"]),
            "step": checkpoint.get("step", 0),
            "ema": averaged,
            "image_size": config.get("image_size"),
            "side_by_side": checkpoint.get("side_by_side"),  # None: a run from before it was recorded
        }
        return cls(generators, config, checkpoint["task"], path, description)

    @property
    def settings(self) -> dict:
        """The task's own settings the run trained with (direction, load_size, ...), as plain data."""
        return dict(self.config.get(self.task) or {})

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

    def evaluate(
        self,
        reference: str | None = None,  # the folder to take the test split from (default: the run's data)
        features: str = "auto",  # FID/KID features: mnist, cifar10, inception; auto: mnist for 1x28x28, else none
        inception_weights: str | None = None,
    ) -> dict:
        """L1, PSNR and SSIM against the targets, the cycle error, SWD (and with a feature extractor FID and
        KID) on the test split of its data (``evaluate.evaluate_translator``)."""
        from ganforge.tasks.translation.evaluate import evaluate_translator

        return evaluate_translator(self, reference, features, inception_weights)

    def app(self, allowed_hosts: list[str] | None = None, max_pixels: int | None = None):
        """The page that translates an uploaded image (``web.py``), of at most ``max_pixels`` a request (default:
        ``web.SERVE_MAX_PIXELS``)."""
        from ganforge.tasks.translation.web import SERVE_MAX_PIXELS, create_app

        return create_app(self, allowed_hosts=allowed_hosts, max_pixels=max_pixels or SERVE_MAX_PIXELS)

    def export(
        self, format: str, out: Path, overwrite: bool = False, license: str = "other", direction: str = "AtoB"
    ) -> Path:
        """Its ``direction`` translator as ONNX or safetensors, or every translator as a hub folder (``export.py``)."""
        from ganforge.tasks.translation.export import export

        return export(self, format, Path(out), overwrite, license, direction)


def load_translator(source: str | Path | Trained, device: str = "auto", ema: bool = True) -> TrainedTranslator:
    """The translation run (directory, checkpoint or exported folder) at ``source``, on ``device``: ``ganforge.load``,
    refusing a run that does not translate. With ``ema`` (the default), the translators' moving averages when the
    run kept them.

    >>> translator = load_translator("runs/facades")
    >>> photos = translator.translate(label_maps)  # (N, C, H, W) uint8 in and out, any H and W
    """
    return load(source, device, ema, command="translate")


def input_files(inputs: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """(file, name to write it under) of every image among ``inputs`` (files, and folders searched whole)."""
    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += [(path, path.relative_to(item).with_suffix(".png")) for path in list_images(item)]
        elif item.is_file():
            found.append((item, Path(item.stem + ".png")))
        else:
            raise GanforgeError(f"{item} does not exist")
    names = [name for _, name in found]
    if len(set(names)) < len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise UsageError(f"two inputs would both be written to {twice}: translate them into separate --out folders")
    return found


def read_input(
    path: Path | BinaryIO, channels: int, size: int, name: str | None = None, half: str | None = None
) -> torch.Tensor:
    """(1, C, H, W) uint8 of ``path`` (a file, or an open binary stream called ``name``) in ``channels``, its
    ``half`` alone ('left', 'right') when it holds a pair side by side, stretched to ``size`` square unless 0:
    read as training reads its test images; one line for a non-image or one over ``MAX_PIXELS``."""
    if half is None:
        return read_image(path, channels, size or None, crop=False, name=name, max_pixels=MAX_PIXELS)[None]
    image = open_image(path, mode_of(channels), name, MAX_PIXELS)
    width, height = image.size
    image = image.crop((0, 0, width // 2, height) if half == "left" else (width // 2, 0, width, height))
    return to_tensor(fit(image, size, crop=False) if size else image)[None]


def trained_side_by_side(translator: "TrainedTranslator") -> bool:
    """Whether the run trained on files that each hold a pair side by side (pix2pix's layout). A run from before
    this was recorded is asked through its data folder, where that still exists."""
    recorded = translator.description.get("side_by_side")
    if recorded is not None:
        return bool(recorded)
    from ganforge.tasks.translation.data import find_splits

    try:
        return find_splits(Path(str(translator.config.get("data"))), need_pairs=False)[0].b is None
    except (GanforgeError, OSError, ValueError):
        return False


def is_pair(width: int, height: int) -> bool:
    """Whether an image of ``width`` x ``height`` is read as a pair side by side (with ``--side-by-side auto``, of a
    run trained on such pairs): exactly twice as wide as tall."""
    return width == 2 * height


def input_half(translator: "TrainedTranslator", direction: str) -> tuple[str, str]:
    """(which half of a pair side by side the translator for ``direction`` reads, its domain's letter): A's, the
    left, with the run's own direction; else B's, the right."""
    reads_a = (translator.settings.get("direction", "AtoB") == "AtoB") == (direction == "AtoB")
    return ("left", "A") if reads_a else ("right", "B")


def input_halves(
    translator: "TrainedTranslator", direction: str, side_by_side: str, sizes: list[tuple[Path, tuple[int, int]]]
) -> tuple[list[str | None], str]:
    """Which half of each input to translate (None: the whole image), and what to say of it.

    ``side_by_side`` 'yes': every input holds a pair, A on the left, B on the right; 'no': none does; 'auto': an
    input exactly twice as wide as tall does when the run trained on pairs side by side. The half is the one the
    translator for ``direction`` reads: A's with the run's own direction, else B's.
    """
    if side_by_side not in SIDE_BY_SIDE:
        raise UsageError(f"--side-by-side must be one of {', '.join(SIDE_BY_SIDE)}, got {side_by_side}")
    if side_by_side == "no":
        return [None] * len(sizes), ""
    half, letter = input_half(translator, direction)
    if side_by_side == "yes":
        for path, (width, height) in sizes:
            if width % 2:
                raise GanforgeError(
                    f"{path} is {width}x{height}: it cannot hold a pair side by side (two images of equal width); "
                    "--side-by-side no translates it whole"
                )
        return [half] * len(sizes), f"translating the {half} half ({letter}) of each input (--side-by-side yes)"
    if not trained_side_by_side(translator):
        return [None] * len(sizes), ""
    halves = [half if is_pair(width, height) else None for _, (width, height) in sizes]
    count = sum(h is not None for h in halves)
    said = (
        f"{count:,} of the {len(sizes):,} inputs are twice as wide as tall, pairs side by side as the run trained on: "
        f"translating their {half} halves ({letter}); --side-by-side no translates them whole"
    )
    return halves, said if count else ""


def check_size(size: int | None) -> None:
    """One line, before any work, for a --size that is negative or whose square is over ``MAX_PIXELS``."""
    if size is not None and size < 0:
        raise UsageError(f"--size must be 0 or more, got {size}")
    if size and size * size > MAX_PIXELS:
        raise UsageError(
            f"--size {size} would translate {size}x{size} images, over the {MAX_PIXELS:,}-pixel cap of a "
            f"translation: use --size {int(MAX_PIXELS**0.5)} or less"
        )


def check_outside_inputs(out: Path, inputs: Sequence[Path], files: list[tuple[Path, Path]]) -> None:
    """Refuse, even with --overwrite, an ``out`` that is or lies inside an input folder, or that would write over
    an input file (paths resolved through symlinks): translate never touches what it reads."""
    resolved = out.resolve()
    for item in inputs:
        if item.is_dir() and (resolved == item.resolve() or resolved.is_relative_to(item.resolve())):
            raise UsageError(
                f"--out {out} is inside the input folder {item}: translate never writes among its inputs; "
                "choose another --out"
            )
    read = {path.resolve(): path for path, _ in files}
    for _, name in files:
        if (out / name).resolve() in read:
            raise UsageError(
                f"--out {out} would write over the input {read[(out / name).resolve()]}: translate never "
                "replaces its inputs; choose another --out"
            )


def readable_inputs(files: list[tuple[Path, Path]], required: bool = True) -> list[tuple[Path, Path, tuple[int, int]]]:
    """(file, name, (width, height)) of the inputs whose header reads as an image within ``MAX_PIXELS``, each other
    one skipped with a warning (as training skips unreadable images in a folder): checked before anything is
    written. None readable is an error where ``required``."""
    readable, unreadable = [], []
    for path, name in files:
        try:
            size = probe_image(path, max_pixels=MAX_PIXELS)
        except UnreadableImage as error:
            unreadable.append(error)
            continue
        readable.append((path, name, size))
    if not readable and required:  # nothing to do: the error itself (of the one input), or how many
        first = unreadable[0]
        raise first if len(files) == 1 else GanforgeError(f"none of the {len(files)} inputs reads as an image: {first}")
    for error in unreadable:
        log.warning(f"skipping {error.name}: {error.reason}")
    return readable


def translate(
    source: str | Path | Trained,
    inputs: Sequence[str | Path],
    out: str | Path,
    direction: str = "AtoB",
    size: int | None = None,  # None: the run's training size; 0: each image's own
    device: str = "auto",
    overwrite: bool = False,  # replace earlier outputs at ``out`` (never an input)
    skip_existing: bool = False,  # leave the outputs already at ``out`` as they are: continue a translate
    progress: bool = True,
    ema: bool = True,  # the translator's moving average when the run kept one
    side_by_side: str = "auto",  # 'yes', 'no' or 'auto': whether each input holds a pair, A | B (``input_halves``)
) -> list[Path]:
    """Translate image files and folders into PNGs in the folder ``out``; returns the files written.

    Nothing is written before every input's header has been read: an unreadable input is skipped with a
    warning. ``out`` may not be an input folder or lie inside one, whatever ``overwrite`` says. An input that
    holds a pair side by side, as the run's training files did (its test split, say), has its input half
    translated, and the log says so.
    """
    if overwrite and skip_existing:
        raise UsageError("--overwrite replaces the outputs already there and --skip-existing keeps them: give one")
    check_size(size)
    files, out = input_files(inputs), Path(out)
    check_outside_inputs(out, [Path(item) for item in inputs], files)
    every = len(files)
    if skip_existing:
        files = [(path, name) for path, name in files if not (out / name).exists()]
    else:
        refuse_to_replace([out / name for _, name in files], overwrite, other="--skip-existing to keep them")
    # Continuing a translate whose first run skipped an unreadable input: that input left alone is not an error.
    files = readable_inputs(files, required=len(files) == every) if files else files
    translator = load_translator(source, device, ema)
    generator = translator.generator(direction)
    halves, said = input_halves(translator, direction, side_by_side, [(path, wh) for path, _, wh in files])
    if said:
        log.info(said)
    size = translator.config["image_size"] if size is None else size
    written = []
    with progress_shown(progress), progress_bar(len(files), "translate") as bar:
        for (path, name, _), half in zip(files, halves):
            bar.update()
            try:
                image = read_input(path, generator.in_channels, size, half=half)
            except UnreadableImage as error:  # a header that read, over data that do not
                log.warning(f"skipping {error.name}: {error.reason}")
                continue
            picture = to_picture(translate_images(generator, image)[0])  # (C, H, W) uint8
            target = out / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise GanforgeError(f"cannot write {target.parent}: {error.strerror or error}") from None
            atomic_write(target, lambda file, picture=picture: picture.save(file, format="PNG"), durable=False)
            written.append(target)
    return written
