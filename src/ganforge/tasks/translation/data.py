"""Translation data: image pairs (pix2pix) or two domains (CycleGAN), decoded once into uint8 tensors.

``--data DIR`` is read in the first layout that fits:

- ``DIR/trainA``, ``DIR/trainB`` (and ``testA``, ``testB``): CycleGAN's two domains;
- ``DIR/A``, ``DIR/B``: two folders, paired by file name (``a.png`` with ``a.jpg``) when every name is in both;
- ``DIR/train`` (and ``test``): pix2pix's layout, each file holding A and B side by side;
- image files directly in ``DIR``: side by side, as pix2pix's.

Where the layout has no test split, a fixed share of the training files
(``--holdout``) is kept out, as for image folders. Every image is converted to
the domain's channels (the most common mode: grayscale 1, else 3; 16-bit
grayscale is scaled to 8 bits, RGBA loses its alpha) and resized, ignoring its
aspect ratio as pix2pix does, to a square: ``--load-size`` for training (the
step then crops ``--image-size`` at random and flips), ``--image-size`` for the
test images. Nothing is ever written into ``DIR``.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from ganforge.data import HOLDOUT_SEED, check_fits_in_memory, conform_images, list_images, typical_image_shape
from ganforge.data.images import fit, is_image_file, open_image, to_tensor
from ganforge.errors import GanforgeError

log = logging.getLogger("ganforge")


@dataclass
class TranslationData:
    """Inputs and targets of a translation, in memory (after ``--direction``)."""

    a: torch.Tensor  # (N, C_in, S, S) uint8: what is translated
    b: torch.Tensor  # (M, C_out, S, S) uint8: what it is translated into
    paired: bool  # b[i] is a[i]'s target (then M == N)
    description: str  # where the images came from, for the log
    side_by_side: bool = False  # read from files that each hold a pair, A | B

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))


@dataclass(frozen=True)
class Split:
    """The files of one split: side by side (``b`` None), or one list per domain (paired: the same stems)."""

    a: list[Path]
    b: list[Path] | None  # None: each file of ``a`` holds A | B side by side
    paired: bool

    def take(self, indices: list[int]) -> "Split":
        """The files at ``indices`` (of both domains when paired; of A alone otherwise, all of B kept)."""
        pick = lambda files: [files[i] for i in indices]  # noqa: E731
        b = None if self.b is None else pick(self.b) if self.paired else self.b
        return Split(pick(self.a), b, self.paired)


def two_domains(folder_a: Path, folder_b: Path, need_pairs: bool) -> Split:
    """The files of two folders, paired by stem when every stem is in both; ``need_pairs``: else an error."""
    files_a, files_b = list_images(folder_a), list_images(folder_b)
    stems_a, stems_b = {p.stem: p for p in files_a}, {p.stem: p for p in files_b}
    if stems_a.keys() == stems_b.keys() and len(files_a) == len(stems_a) and len(files_b) == len(stems_b):
        return Split([stems_a[s] for s in sorted(stems_a)], [stems_b[s] for s in sorted(stems_a)], paired=True)
    if need_pairs:
        alone_a = sorted(stems_a.keys() - stems_b.keys())
        alone_b = sorted(stems_b.keys() - stems_a.keys())
        first = (
            f"{stems_a[alone_a[0]]} has no {folder_b.name}/{alone_a[0]}.*"
            if alone_a
            else f"{stems_b[alone_b[0]]} has no {folder_a.name}/{alone_b[0]}.*"
            if alone_b
            else "two files share a name but not an extension"
        )
        raise GanforgeError(
            f"{folder_a} ({len(files_a)} images) and {folder_b} ({len(files_b)}) are not pairs: {first}; "
            "pix2pix needs the same file names in both (cyclegan takes unpaired folders)"
        )
    return Split(files_a, files_b, paired=False)


def find_splits(root: Path, need_pairs: bool) -> tuple[Split, Split | None, str]:
    """(training files, test files or None, the layout's name) of ``root`` (see the module's docstring)."""
    if not root.is_dir():
        raise GanforgeError(f"{root} is not a folder")
    has = lambda *names: all((root / name).is_dir() for name in names)  # noqa: E731
    if has("trainA", "trainB"):
        test = two_domains(root / "testA", root / "testB", need_pairs) if has("testA", "testB") else None
        return two_domains(root / "trainA", root / "trainB", need_pairs), test, "trainA/ and trainB/"
    if has("A", "B"):
        return two_domains(root / "A", root / "B", need_pairs), None, "A/ and B/"
    if has("train"):
        test = Split(list_images(root / "test"), None, True) if has("test") else None
        return Split(list_images(root / "train"), None, True), test, "pairs side by side in train/"
    loose = [p for p in root.iterdir() if is_image_file(p)]
    if loose:
        return Split(sorted(loose), None, True), None, "pairs side by side"
    raise GanforgeError(
        f"{root} holds no translation data: expected trainA/ and trainB/ (CycleGAN), A/ and B/ with the same file "
        "names, or train/ (or images) with each pair side by side (pix2pix)"
    )


def halves(image: Image.Image, path: Path) -> tuple[Image.Image, Image.Image]:
    """(left, right) halves of a side-by-side pair; an odd width means halves of different sizes."""
    width, height = image.size
    if width % 2:
        raise GanforgeError(
            f"{path} is {width}x{height}: its halves differ in size (a pair side by side is two images of equal "
            "width, A on the left, B on the right)"
        )
    return image.crop((0, 0, width // 2, height)), image.crop((width // 2, 0, width, height))


def to_square_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """(C, size, size) uint8: stretched to a square by the one resize of data, as pix2pix's transforms."""
    return to_tensor(fit(image, size, crop=False))


def domain_channels(files: list[Path], channels: int | None) -> int:
    """``channels``, else the most common mode's among ``files`` (grayscale 1, anything else 3)."""
    return channels or typical_image_shape(files)[0]


def decode_split(split: Split, size: int, channels: int | None, what: str) -> TranslationData:
    """Every image of ``split`` at ``size`` x ``size``: A and B, as tensors."""
    channels_a = domain_channels(split.a, channels)
    channels_b = channels_a if split.b is None else domain_channels(split.b, channels)
    count_b = len(split.a) if split.b is None else len(split.b)
    check_fits_in_memory(
        len(split.a) + count_b, max(channels_a, channels_b), size, size, what, "use a smaller --load-size"
    )
    mode_a, mode_b = ("L" if c == 1 else "RGB" for c in (channels_a, channels_b))
    a = torch.empty(len(split.a), channels_a, size, size, dtype=torch.uint8)
    b = torch.empty(count_b, channels_b, size, size, dtype=torch.uint8)
    for index, path in enumerate(split.a):
        image = open_image(path, mode_a)
        if split.b is None:
            left, right = halves(image, path)
            a[index], b[index] = to_square_tensor(left, size), to_square_tensor(right, size)
        else:
            a[index] = to_square_tensor(image, size)
    for index, path in enumerate(split.b or []):
        b[index] = to_square_tensor(open_image(path, mode_b), size)
    description = f"{what}, {len(a):,} A and {len(b):,} B images"
    return TranslationData(a, b, split.paired, description, side_by_side=split.b is None)


def holdout_indices(count: int, fraction: float) -> tuple[list[int], list[int]]:
    """(kept, held out): a fixed random ``fraction`` of ``count`` files, as ``data.split_holdout`` chooses."""
    held = round(count * fraction)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(HOLDOUT_SEED)).tolist()
    return sorted(order[held:]), sorted(order[:held])


def load_translation_data(
    root: str | Path,
    direction: str,  # 'AtoB' or 'BtoA'
    load_size: int,  # training images are stored at this size (the step crops them)
    image_size: int,  # test images are stored at this size
    channels: int | None,  # None: each domain's own
    holdout: float,  # share of the training files kept out when the layout has no test split
    need_pairs: bool,  # pix2pix: refuse unpaired data
    test_only: bool = False,  # decode the test split alone (evaluate)
) -> tuple[TranslationData | None, TranslationData, str]:
    """(training data or None with ``test_only``, test data, which test split) of the folder ``root``."""
    root = Path(root)
    train, test, layout = find_splits(root, need_pairs)
    which = "test"
    if test is None:
        kept, held = holdout_indices(len(train.a), holdout)
        if not held:
            raise GanforgeError(f"{root} has no test split and --holdout {holdout} keeps no image out of training")
        train, test, which = train.take(kept), train.take(held), "held-out"
    training = None if test_only else decode_split(train, load_size, channels, f"{root} ({layout})")
    testing = decode_split(test, image_size, channels, f"{root} ({which})")
    if training is not None and (training.a.shape[1], training.b.shape[1]) != (testing.a.shape[1], testing.b.shape[1]):
        # A test split whose files are mostly of another mode than the training files': the training's channels.
        testing.a = conform_images(testing.a, None, training.a.shape[1])
        testing.b = conform_images(testing.b, None, training.b.shape[1])
    if direction == "BtoA":
        for data in (training, testing):
            if data is not None:
                data.a, data.b = data.b, data.a
    return training, testing, which
