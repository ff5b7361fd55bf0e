"""The data pipeline: decode a dataset once into a uint8 tensor, batch from memory.

Built-in torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10) and folders of
images are decoded once into one ``(N, C, H, W)`` uint8 tensor; training then
indexes batches from it and scales them on the training device, with no
per-image Python in the loop. MNIST falls back to a 10,000-image subset that
ships inside the package when the full set is neither on disk nor downloadable.
A large folder is decoded once into a cache entry keyed by its files' names,
sizes and modification times (``cached_folder``), so later runs start at once;
a folder whose images would fill more than half the memory is streamed from
that entry, memory-mapped, rather than read into memory (``decode_folder``).
"""

import collections
import hashlib
import logging
import math
import os
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from tqdm import tqdm

from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.files import atomic_write

log = logging.getLogger("ganforge")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
FOLDER_IMAGE_SIZE = 64  # default --image-size for folders of larger images (smaller ones train at their own)
FOLDER_CACHE_MIN = 1000  # folders of at least this many images are decoded once, into the decode cache
FOLDER_CACHE_FORMAT = 1  # part of the cache key: a new decode policy makes new entries
GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L")  # 16-bit grayscale PNGs open as one of these
MEMORY_FRACTION = 0.5  # data needing more than this share of RAM: a folder streams from its cache, others refused
STREAM_CHUNK = 4096  # images copied at a time between memory-mapped files
HOLDOUT_SEED = 20261124  # fixed, so every run on the same data holds out the same images
MIRROR_STREAM = 2**40  # offsets --mirror's random stream from the batch order's


@dataclass
class ImageDataset:
    """A whole dataset in memory."""

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


def data_root(root: str | Path | None = None) -> tuple[Path, bool]:
    """(torchvision data root, whether the user named it): ``root``, else $GANFORGE_DATA_ROOT, else the cache.

    A root the user names must exist and is only ever read; downloads go to ganforge's own cache folder alone.
    """
    if root is not None or os.environ.get("GANFORGE_DATA_ROOT"):
        return Path(root if root is not None else os.environ["GANFORGE_DATA_ROOT"]), True
    return cache_home() / "data", False


# ---------------------------------------------------------------- dataset sources


@dataclass(frozen=True)
class DataSource:
    """One kind of dataset source: how ``--data`` text names it, how to load it, what its evaluation reference is.

    ``data`` below is that text (a built-in name, a path, ...); ``root`` the --data-root (None: the default).
    """

    matches: Callable[[str], bool]  # whether ``data`` names a source of this kind
    # (data, root, image_size or None, channels or None, download) -> every image of the training split
    load: Callable[[str, str | Path | None, int | None, int | None, bool], ImageDataset]
    # (data, root) -> the test split; None: this kind has none, and evaluation uses the share training held out
    load_test: Callable[[str, str | Path | None], ImageDataset] | None = None
    is_path: bool = True  # ``data`` is a file or folder: recorded as an absolute path, and never written into
    default_image_size: int | None = None  # --image-size when none is given (None: the images' own)

    @property
    def has_test_split(self) -> bool:
        return self.load_test is not None

    def canonical(self, data: str) -> str:
        """How a run's config records ``data``: an absolute path for files and folders, so any directory resumes it."""
        return str(Path(data).resolve()) if self.is_path else data

    def short_name(self, data: str) -> str:
        """The name a run directory is given after: 'mnist', or a file's or folder's stem."""
        return Path(data).stem if self.is_path else data

    def protected_paths(self, data: str, root: str | Path | None) -> list[Path]:
        """What a run must never write into: the file or folder itself, else the data root it is read from."""
        return [Path(data)] if self.is_path else [data_root(root)[0]]


def load_builtin(data: str, root, image_size, channels, download: bool) -> ImageDataset:
    """A built-in dataset's training split (read only from a root the user names)."""
    path, named = data_root(root)
    if named and not path.is_dir():
        raise GanforgeError(f"data root {path} does not exist")
    if data == "celeba":
        return load_celeba(path, "never" if named else download, image_size=image_size)
    return load_torchvision_dataset(data, path, download="never" if named else download)


def load_builtin_test(data: str, root) -> ImageDataset:
    """A built-in dataset's test split, from a data root the user names (never downloaded)."""
    path, named = data_root(root)
    if not named or not path.is_dir():
        raise GanforgeError(f"the {data} reference needs its test split: pass --data-root DIR")
    if data == "celeba":
        return load_celeba(path, "never", train=False)
    return load_torchvision_dataset(data, path, download="never", train=False)


# Each kind of source, tried in this order. A new kind is one entry (and its loader): training, evaluation,
# CAS and the periodic evaluator all ask ``resolve_source``.
SOURCES: dict[str, DataSource] = {
    "torchvision": DataSource(
        matches=lambda data: data in BUILTIN_DATASETS,
        load=load_builtin,
        load_test=load_builtin_test,
        is_path=False,
    ),
    "folder": DataSource(
        matches=lambda data: Path(data).is_dir(),
        load=lambda data, root, image_size, channels, download: load_image_folder(
            Path(data), image_size, channels, largest=FOLDER_IMAGE_SIZE
        ),
    ),
    "npz": DataSource(
        matches=lambda data: Path(data).suffix == ".npz",
        load=lambda data, root, image_size, channels, download: load_npz(Path(data)),
    ),
}


def resolve_source(data: str) -> DataSource:
    """The kind of source ``data`` names; a one-line UsageError when it names none."""
    for source in SOURCES.values():
        if source.matches(data):
            return source
    raise UsageError(f"{data!r} is neither a known dataset ({', '.join(BUILTIN_DATASETS)}), a folder nor an .npz file")


def load_dataset(
    data: str,
    root: str | Path | None = None,
    image_size: int | None = None,
    channels: int | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load the training images of ``data`` (a built-in dataset name, a folder or an .npz file) into memory.

    ``root`` is the torchvision data root (default: ``data_root()``'s).
    A root the user names (argument or $GANFORGE_DATA_ROOT) must exist and is
    only ever read: downloads go to ganforge's own cache folder alone.
    ``image_size`` and ``channels`` default to the dataset's own; otherwise the
    images are resized, center-cropped and converted once, here.
    """
    source = resolve_source(data)
    dataset = source.load(data, root, image_size or source.default_image_size, channels, download)
    count, own_channels, height, width = dataset.images.shape
    shape = (channels or own_channels, *((image_size, image_size) if image_size else (height, width)))
    if shape != (own_channels, height, width):  # conform_images makes a new tensor: it must fit
        check_fits_in_memory(count, *shape, data, "use a smaller --image-size")
        dataset.images = conform_images(dataset.images, image_size, channels)
    return dataset


def load_reference(data: str, root: str | Path | None = None, holdout: float = 0.0) -> tuple[ImageDataset, str]:
    """(the evaluation reference of ``data``, which split it is): the test split where the source has one, else
    with ``holdout`` the share training held out (``split_holdout``), else every image."""
    source = resolve_source(data)
    if source.has_test_split:
        return source.load_test(data, root), "test"
    dataset = source.load(data, root, None, None, False)
    if holdout:
        return split_holdout(dataset, holdout)[1], "held-out"
    return dataset, "all"


def load_training_part(data: str, root: str | Path | None = None, holdout: float = 0.0) -> ImageDataset:
    """The images of ``data`` that training saw: its training split, less the held-out share (for CAS's baseline)."""
    source = resolve_source(data)
    dataset = source.load(data, root, None, None, False)
    return dataset if source.has_test_split else split_holdout(dataset, holdout)[0]


# ---------------------------------------------------------------- torchvision


@dataclass(frozen=True)
class TorchvisionDataset:
    """How ganforge reads one torchvision dataset: its class, how it names a split, where its pixels and labels
    are, and what a user offline must put into the data root."""

    cls: str  # the class in torchvision.datasets
    files: str  # what torchvision reads from the root, for the offline message
    split_kwarg: bool = False  # split="train"/"test" (SVHN, STL10) instead of train=True/False
    labels: str = "targets"  # the attribute holding the labels
    channels_first: bool = False  # .data is (N, C, H, W) already (SVHN, STL10), not (N, H, W[, C])


TORCHVISION_DATASETS = {
    "mnist": TorchvisionDataset("MNIST", "MNIST/raw/*-ubyte"),
    "fashion-mnist": TorchvisionDataset("FashionMNIST", "FashionMNIST/raw/*-ubyte"),
    "cifar10": TorchvisionDataset("CIFAR10", "cifar-10-batches-py/"),
    "cifar100": TorchvisionDataset("CIFAR100", "cifar-100-python/"),
    "svhn": TorchvisionDataset("SVHN", "train_32x32.mat and test_32x32.mat", True, "labels", True),
    "stl10": TorchvisionDataset("STL10", "stl10_binary/", True, "labels", True),
}


BUILTIN_DATASETS = (*TORCHVISION_DATASETS, "celeba")  # --data names; CelebA is read as a folder (load_celeba)
CELEBA_IMAGE_SIZE = 64  # CelebA's default --image-size: the 178x218 aligned faces, centre-cropped square
CELEBA_SPLITS = {True: "0", False: "2"}  # list_eval_partition.txt: 0 train, 1 validation, 2 test


def load_celeba(root: Path, download: bool | str, train: bool = True, image_size: int | None = None) -> ImageDataset:
    """CelebA's aligned faces (``celeba/img_align_celeba/``) of one split (``celeba/list_eval_partition.txt``),
    unlabelled, decoded at ``image_size`` (default 64) like a folder, through the decode cache.

    torchvision's ``CelebA`` reads the 202,599 JPEGs one by one at every epoch; here they are decoded once.
    Downloading goes through torchvision (Google Drive, which often refuses: then put the files there by hand).
    """
    folder = root / "celeba"
    partition, images_dir = folder / "list_eval_partition.txt", folder / "img_align_celeba"
    reason = "downloading is off"
    if download == "never":
        download, reason = False, "ganforge never downloads into a data root you name (leave it out to use the cache)"
    if not (partition.is_file() and images_dir.is_dir()) and download:
        import torchvision

        try:
            root.mkdir(parents=True, exist_ok=True)
            torchvision.datasets.CelebA(str(root), split="all", download=True)
        except Exception as error:  # network failures, Google Drive's quota, missing gdown: many types
            reason = f"could not be downloaded ({type(error).__name__}: {first_line(error)})"
    if not (partition.is_file() and images_dir.is_dir()):
        raise GanforgeError(
            f"celeba is not in data root {root} and {reason}; put CelebA's img_align_celeba/ and "
            f"list_eval_partition.txt in {folder}, or pass --data-root DIR naming a root that holds them"
        )
    try:
        rows = [line.split() for line in partition.read_text().splitlines() if line.strip()]
        names = [name for name, split in rows if split == CELEBA_SPLITS[train]]
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise GanforgeError(f"cannot read {partition}: {first_line(error)}") from None
    if not names:
        raise GanforgeError(f"{partition} lists no {'training' if train else 'test'} images")
    files, size = [images_dir / name for name in names], image_size or CELEBA_IMAGE_SIZE
    images, kept, streamed = decode_folder(images_dir, files, 3, size)
    split = "training" if train else "test"
    return ImageDataset(images, None, [], f"CelebA {split} set, {len(kept):,} images, from {folder}", streamed)


def load_torchvision_dataset(name: str, root: Path, download: bool | str, train: bool = True) -> ImageDataset:
    """A split of a torchvision dataset; MNIST's training split falls back to the embedded subset.

    ``download`` "never" means the root was named by the user, who gets told why nothing was downloaded.
    """
    import torchvision

    spec = TORCHVISION_DATASETS[name]
    dataset_class = getattr(torchvision.datasets, spec.cls)
    split = {"split": "train" if train else "test"} if spec.split_kwarg else {"train": train}
    dataset, reason = None, "downloading is off"
    if download == "never":
        download, reason = False, "ganforge never downloads into a data root you name (leave it out to use the cache)"
    try:
        dataset = dataset_class(str(root), **split, download=False)
    except ImportError as error:  # SVHN's .mat files need scipy, which torchvision does not install
        raise GanforgeError(f"reading {name} needs the package {error.name}: pip install {error.name}") from None
    except RuntimeError:  # torchvision: "Dataset not found"
        if download:
            try:
                root.mkdir(parents=True, exist_ok=True)
                dataset = dataset_class(str(root), **split, download=True)
            except Exception as error:  # network failures come in many types
                reason = f"could not be downloaded ({type(error).__name__}: {first_line(error)})"
    if dataset is None:
        if name == "mnist" and train:
            log.warning(f"MNIST is not in {root} and {reason}: training on the embedded 10,000-image subset")
            return load_embedded_mnist()
        raise GanforgeError(
            f"{name} is not in data root {root} and {reason}; put torchvision's {spec.files} there, "
            "or pass --data-root DIR naming a root that holds them"
        )
    images = torch.as_tensor(np.asarray(dataset.data))
    if images.ndim == 3:  # (N, H, W) grayscale
        images = images[:, None]
    elif not spec.channels_first:  # (N, H, W, C)
        images = images.permute(0, 3, 1, 2)
    labels = torch.as_tensor(np.asarray(getattr(dataset, spec.labels)), dtype=torch.int64)
    classes = list(getattr(dataset, "classes", None) or [str(label) for label in range(int(labels.max()) + 1)])
    description = f"{spec.cls} {'training' if train else 'test'} set, {len(labels):,} images, from {root}"
    return ImageDataset(images.contiguous(), labels, classes, description)


def load_embedded_mnist() -> ImageDataset:
    """The 10,000-image MNIST subset shipped with ganforge (see assets/MNIST-NOTICE.md)."""
    with resources.files("ganforge.assets").joinpath("mnist_subset.npz").open("rb") as file:
        arrays = np.load(file)
        images, labels = arrays["images"], arrays["labels"]
    classes = [f"{digit} - {word}" for digit, word in enumerate(DIGIT_NAMES)]
    return ImageDataset(
        torch.from_numpy(images)[:, None].contiguous(),
        torch.from_numpy(labels.astype(np.int64)),
        classes,
        f"embedded MNIST subset, {len(labels):,} images",
    )


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


MAX_CLASSES = 10_000  # labels of an .npz must lie in [0, MAX_CLASSES)


def load_npz(path: Path) -> ImageDataset:
    """Images from an .npz file: uint8 ``images`` (N, C, H, W) or (N, H, W), optional ``labels`` (N,).

    This is the format ``ganforge generate --out FILE.npz`` writes. The
    arrays' shapes are read from their headers and checked (memory, sizes,
    labels) before the data are.
    """
    try:
        with np.load(path) as arrays:
            names = list(arrays.keys())
            if "images" not in names:
                raise GanforgeError(f"{path} has no 'images' array (it holds: {', '.join(names) or 'nothing'})")
            shape, dtype = npz_array_header(path, "images")
            check_npz_images(path, shape, dtype)
            images, labels = arrays["images"], arrays["labels"] if "labels" in names else None
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise GanforgeError(f"cannot read {path} as an .npz file ({first_line(error)})") from None
    images = torch.from_numpy(images if images.ndim == 4 else images[:, None])
    if labels is None:
        return ImageDataset(images.contiguous(), None, [], f"{path}, {len(images):,} images")
    label_tensor = checked_labels(path, labels, len(images))
    classes = [str(c) for c in range(int(label_tensor.max()) + 1)]
    return ImageDataset(images.contiguous(), label_tensor, classes, f"{path}, {len(images):,} images")


def npz_array_header(path: Path, name: str) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of array ``name`` in an .npz, read from its header without reading the data."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as file:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(file)
    return shape, dtype


def check_npz_images(path: Path, shape: tuple, dtype: np.dtype) -> None:
    """Refuse an .npz 'images' array of the wrong kind, of empty images, or too big to hold in memory."""
    if dtype != np.uint8 or len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] not in (1, 3)):
        raise GanforgeError(
            f"{path}: 'images' must be uint8 of shape (N, C, H, W) with C 1 or 3, or (N, H, W); got {dtype} {shape}"
        )
    count, channels, height, width = shape if len(shape) == 4 else (shape[0], 1, *shape[1:])
    if not count or not height or not width:
        raise GanforgeError(f"{path}: 'images' holds {count} images of {height}x{width} pixels: nothing to train on")
    check_fits_in_memory(count, channels, height, width, str(path), "use a smaller .npz")


def checked_labels(path: Path, labels: np.ndarray, count: int) -> torch.Tensor:
    """An .npz's labels as int64, once they are ``count`` whole numbers in [0, MAX_CLASSES)."""
    if labels.shape != (count,):
        raise GanforgeError(f"{path}: 'labels' must have shape ({count},), got {labels.shape}")
    if labels.dtype.kind not in "iuf":
        raise GanforgeError(f"{path}: 'labels' must be class numbers, got {labels.dtype}")
    whole = np.isfinite(labels) & (labels == np.round(labels)) if labels.dtype.kind == "f" else np.ones(count, bool)
    bad = ~whole | (labels < 0) | (labels >= MAX_CLASSES)
    if bad.any():
        index = int(np.argmax(bad))
        raise GanforgeError(
            f"{path}: 'labels' must be whole numbers in [0, {MAX_CLASSES:,}), one class per image; "
            f"found {labels[index]:g} at index {index:,}"
        )
    return torch.from_numpy(labels.astype(np.int64))


# ---------------------------------------------------------------- image folders


def find_images(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """Image files under ``root``; each top-level subfolder is a class, as in ImageFolder.

    Returns (files, labels, classes); labels is None when ``root`` has no class
    subfolders and its images lie directly inside it.
    """
    try:
        return scan_image_folder(root)
    except OSError as error:
        raise GanforgeError(f"cannot read {error.filename or root}: {error.strerror or error}") from None


def scan_image_folder(root: Path) -> tuple[list[Path], list[int] | None, list[str]]:
    """``find_images`` without the error translation."""
    is_image = lambda path: path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()  # noqa: E731
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels, classes = [], [], []
    for class_dir in class_dirs:
        class_files = sorted(p for p in class_dir.rglob("*") if is_image(p))
        if class_files:
            labels += [len(classes)] * len(class_files)
            classes.append(class_dir.name)
            files += class_files
    loose = sorted(p for p in root.iterdir() if is_image(p))
    if classes:
        if loose:
            log.warning(
                f"ignoring {len(loose)} images directly in {root}: with class subfolders, images belong in them"
            )
        return files, labels, classes
    return loose, None, []


def load_image_folder(
    root: Path, image_size: int | None, channels: int | None, largest: int | None = None
) -> ImageDataset:
    """Decode every image under ``root``, resized (shorter side) and center-cropped to ``image_size``.

    Unreadable files are skipped with a warning naming each one. ``channels``
    None takes the most common mode (grayscale -> 1, otherwise 3) and
    ``image_size`` None the most common shorter side (``typical_image_shape``);
    with ``largest``, that size only where it is at most ``largest`` and the
    convolutional models can be built for it (``trainable_size``), else ``largest``.
    A folder of ``FOLDER_CACHE_MIN`` images or more is decoded once, with a
    progress bar, into the decode cache (``cached_folder``); later loads of the
    same files at the same size start from it. A folder too big for memory
    streams from its cache entry (``decode_folder``).
    """
    files, labels, classes = find_images(root)
    if not files:
        raise GanforgeError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
    if channels is None or image_size is None:
        typical_channels, typical_size = typical_image_shape(files)
        if image_size is None and largest is not None:
            typical_size = typical_size if typical_size <= largest and trainable_size(typical_size) else largest
        channels, image_size = channels or typical_channels, image_size or typical_size
    images, kept, streamed = decode_folder(root, files, channels, image_size)
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.int64) if labels else None
    description = f"image folder {root}, {len(kept):,} images, {len(classes) or 'no'} classes"
    return ImageDataset(images, label_tensor, classes, description, streamed)


def decode_folder(root: Path, files: list[Path], channels: int, image_size: int):
    """(images, indices of the files they came from, the cache file they stream from or None) of ``files``.

    Decoded into memory, through the decode cache for ``FOLDER_CACHE_MIN`` files or more. Where the images
    would need more than ``MEMORY_FRACTION`` of the memory they are decoded into the cache entry and read
    from it memory-mapped, page by page as batches need them: the operating system keeps what fits cached.
    """
    if fits_in_memory(len(files), channels, image_size, image_size):
        if len(files) >= FOLDER_CACHE_MIN:
            return *cached_folder(root, files, channels, image_size)[:2], None
        return *decode_images(files, channels, image_size), None
    needed = len(files) * channels * image_size**2
    log.info(
        f"{root}: {len(files):,} images at {channels}x{image_size}x{image_size} need {needed / 2**30:.1f} GiB, "
        "more than half the memory: streaming them from a memory-mapped decode cache"
    )
    return cached_folder(root, files, channels, image_size, stream=True)


def decode_images(
    files: list[Path], channels: int, image_size: int, progress: bool = False, out: torch.Tensor | None = None
):
    """(images (N, C, S, S) uint8, indices of the files they came from): every readable file, resized (shorter
    side, bicubic) and center-cropped; each unreadable one is skipped with a warning naming it. With ``out``
    (len(files), C, S, S), the images are written into it and a view of its first N rows returned."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    mode = "L" if channels == 1 else "RGB"
    images = torch.empty(len(files), channels, image_size, image_size, dtype=torch.uint8) if out is None else out
    kept = []
    for index, path in enumerate(tqdm(files, desc="decode", unit="image", disable=not progress, leave=False)):
        try:
            with Image.open(path) as image:
                image = to_mode(ImageOps.exif_transpose(image), mode)
                image = TF.resize(image, image_size, InterpolationMode.BICUBIC, antialias=True)
                images[len(kept)] = TF.pil_to_tensor(TF.center_crop(image, image_size))
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            log.warning(f"skipping unreadable image {path}: {error}")
            continue
        kept.append(index)
    if not kept:
        raise GanforgeError(f"none of the {len(files)} image files in {files[0].parent} could be read")
    if len(kept) == len(files):
        return images, kept
    return (images[: len(kept)].clone() if out is None else images[: len(kept)]), kept


def cached_folder(root: Path, files: list[Path], channels: int, image_size: int, stream: bool = False):
    """``decode_images`` once per folder content and size: the result is saved under the cache folder
    (``cache_home()/folders``), keyed by every file's path, size and modification time and by the size and
    channels, so that a changed, added or removed file means a new decode. An entry that does not load (a write
    cut short) is discarded with a warning and rebuilt; a cache that cannot be written costs time only.
    Returns (images, indices of the files they came from, the entry's path).

    With ``stream`` the images never sit in memory whole: they are decoded into a memory-mapped scratch file,
    saved as the entry from there, and returned memory-mapped from the entry (copy-on-write: the entry is
    never changed). The cache must then have room for them, twice while decoding, or the load fails at once.
    """
    path = folder_cache_path(root, files, channels, image_size)
    if path.is_file():
        try:
            entry = torch.load(path, weights_only=True, mmap=stream)
            images, kept = entry["images"], entry["kept"]
            if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (channels, image_size, image_size):
                raise ValueError(f"it holds {images.dtype} images of {tuple(images.shape[1:])}")
            if len(images) != len(kept) or not set(kept) <= set(range(len(files))):
                raise ValueError("its images do not match its list of files")
            log.info(f"decoded images from the cache {path}")
            if len(kept) < len(files):
                log.warning(f"{len(files) - len(kept)} unreadable images in {root} skipped (as when first decoded)")
            return images, kept, path
        except Exception as error:  # torch raises RuntimeError, EOFError, pickle and zip errors for a cut-short file
            log.warning(f"discarding the unreadable decode cache {path} ({first_line(error)}); decoding again")
            path.unlink(missing_ok=True)
    log.info(f"decoding {len(files):,} images in {root} once, into the cache {path}")
    if stream:
        return *decode_streamed(path, files, channels, image_size), path
    images, kept = decode_images(files, channels, image_size, progress=sys.stderr.isatty())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save({"images": images, "kept": kept}, file), durable=False)
        remove_stale_entries(path)
    except (OSError, GanforgeError) as error:
        log.warning(f"could not cache the decoded images: {first_line(error)}")
    return images, kept, path


def decode_streamed(path: Path, files: list[Path], channels: int, image_size: int):
    """``cached_folder``'s decode of images too big for memory: into a memory-mapped scratch file beside the
    entry ``path``, saved as the entry, and returned memory-mapped from it."""
    shape = (len(files), channels, image_size, image_size)
    scratch = path.with_name(f"{path.stem}.decoding-{os.getpid()}.npy")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        check_disk_room(path.parent, 2 * math.prod(shape), "decoding")
        out = torch.from_numpy(np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=shape))
        images, kept = decode_images(files, channels, image_size, progress=sys.stderr.isatty(), out=out)
        atomic_write(path, lambda file: torch.save({"images": images, "kept": kept}, file), durable=False)
        remove_stale_entries(path)
        return torch.load(path, weights_only=True, mmap=True)["images"], kept
    except OSError as error:
        raise GanforgeError(
            f"cannot stream {len(files):,} images through the decode cache {path.parent}: "
            f"{error.strerror or first_line(error)}"
        ) from None
    finally:
        scratch.unlink(missing_ok=True)


def check_disk_room(folder: Path, needed: int, what: str) -> None:
    """Refuse at once, in one line, to write ``needed`` bytes of images into ``folder`` without room for them."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise GanforgeError(
            f"images too big for memory stream from the decode cache, and {what} them needs {needed / 2**30:.1f} "
            f"GiB free in {folder}, which has {free / 2**30:.1f} GiB: free some space, point $XDG_CACHE_HOME "
            "elsewhere, or use a smaller --image-size"
        )


def remove_stale_entries(path: Path) -> None:
    """Delete the cache files of ``path``'s folder at ``path``'s size and channels that are not ``path``'s: the
    entries (and streamed parts) of the folder's earlier contents."""
    for older in path.parent.glob(path.name.rsplit("-", 1)[0] + "-*"):
        if not older.name.startswith(path.stem) and ".decoding-" not in older.name:
            older.unlink(missing_ok=True)


def folder_cache_path(root: Path, files: list[Path], channels: int, image_size: int) -> Path:
    """``cache_home()/folders/<name>-<folder hash>-<C>x<S>-<content hash>.pt`` for these files of ``root``."""
    place = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    content = hashlib.sha256(f"{FOLDER_CACHE_FORMAT} {channels} {image_size}\n".encode())
    for file in files:
        stat = file.stat()
        content.update(f"{file.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    name = "".join(c if c.isalnum() or c in "._" else "_" for c in root.resolve().name)[:40] or "folder"
    return cache_home() / "folders" / f"{name}-{place}-{channels}x{image_size}-{content.hexdigest()[:16]}.pt"


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Convert to 'L' or 'RGB', scaling 16-bit grayscale down to 8 bits rather than clipping it."""
    if image.mode in WIDE_MODES:
        image = Image.fromarray((np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8), "L")
    return image.convert(mode)


def trainable_size(size: int) -> bool:
    """Whether dcgan and resnet build for ``size`` px from a base of 7 px or fewer (28, 32, 48, 64, ...)."""
    from ganforge.models.layers import base_resolution

    try:
        return base_resolution(size)[0] <= 7
    except ValueError:
        return False


def typical_image_shape(files: list[Path], looks: int = 101) -> tuple[int, int]:
    """(channels, shorter side) most common among up to ``looks`` files spread over the folder (headers only).

    The most common shape, not the first file's: one huge or odd image (or a
    decompression bomb) sorting first must not decide the size of all the
    others. Grayscale is 1 channel, anything else 3.
    """
    shapes = collections.Counter()
    for path in files[:: max(1, len(files) // looks)][:looks]:
        try:
            with Image.open(path) as image:
                shapes[(1 if image.mode in GRAYSCALE_MODES else 3), min(image.size)] += 1
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return shapes.most_common(1)[0][0] if shapes else (3, FOLDER_IMAGE_SIZE)


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


# ---------------------------------------------------------------- shaping and batching


def conform_images(images: torch.Tensor, image_size: int | None, channels: int | None) -> torch.Tensor:
    """Convert (N, C, H, W) uint8 images to ``channels`` and a square ``image_size`` (None: keep)."""
    if channels is not None and channels != images.shape[1]:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:  # ITU-R 601 luma, as PIL's convert("L")
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().to(torch.uint8)
    if image_size is not None and images.shape[-2:] != (image_size, image_size):
        images = torch.cat([resize_square(chunk, image_size) for chunk in images.split(4096)])
    return images


def resize_square(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize the shorter side to ``image_size`` (antialiased bilinear) and center-crop."""
    height, width = images.shape[-2:]
    scale = image_size / min(height, width)
    size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
    resized = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - image_size) // 2, (size[1] - image_size) // 2
    cropped = resized[..., top : top + image_size, left : left + image_size]
    return cropped.round().clamp(0, 255).to(torch.uint8)


def scale_images(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """uint8 images -> float in the generator's output range ([0, 1] or [-1, 1])."""
    low, high = output_range
    return images.float() * ((high - low) / 255.0) + low


def to_uint8(images: torch.Tensor, output_range: tuple[float, float]) -> torch.Tensor:
    """Generator output in ``output_range`` -> uint8 in [0, 255]: ``scale_images``'s inverse, rounded."""
    low, high = output_range
    return ((images.float() - low) * (255.0 / (high - low))).round().clamp(0, 255).to(torch.uint8)


def split_holdout(dataset: ImageDataset, fraction: float) -> tuple[ImageDataset, ImageDataset]:
    """(training part, held-out part): a fixed random ``fraction`` of the images is kept out of training.

    A part of streamed images (``ImageDataset.streamed_from``) too big for memory is itself written once
    beside the cache entry and streamed from there (``streamed_part``).
    """

    def part(indices: torch.Tensor, what: str, tag: str) -> ImageDataset:
        labels = dataset.labels[indices] if dataset.labels is not None else None
        description, source = f"{dataset.description}, {what}", dataset.streamed_from
        if source is None or fits_in_memory(len(indices), *dataset.images.shape[1:]):
            return ImageDataset(dataset.images[indices], labels, dataset.classes, description)
        path = source.with_name(f"{source.stem}-holdout{fraction:g}-{tag}.npy")
        return ImageDataset(streamed_part(dataset.images, indices, path), labels, dataset.classes, description, path)

    kept, held = holdout_indices(len(dataset), fraction)
    return part(kept, f"{len(kept):,} for training", "train"), part(held, f"{len(held):,} held out", "held")


def streamed_part(images: torch.Tensor, indices: torch.Tensor, path: Path) -> torch.Tensor:
    """``images[indices]`` without holding it in memory: written once to ``path`` (an .npy file), in chunks,
    and returned memory-mapped from it (copy-on-write); a later call with the same ``path`` reads it at once."""
    shape = (len(indices), *images.shape[1:])
    if path.is_file():
        try:
            array = np.load(path, mmap_mode="c")
            if array.shape == shape and array.dtype == np.uint8:
                return torch.from_numpy(array)
        except (OSError, ValueError) as error:
            log.warning(f"discarding the unreadable {path} ({first_line(error)}); writing it again")
    scratch = path.with_name(f"{path.stem}.decoding-{os.getpid()}.npy")
    try:
        check_disk_room(path.parent, math.prod(shape), "splitting")
        array = np.lib.format.open_memmap(scratch, mode="w+", dtype=np.uint8, shape=shape)
        for start in range(0, len(indices), STREAM_CHUNK):
            array[start : start + STREAM_CHUNK] = images[indices[start : start + STREAM_CHUNK]].numpy()
        array.flush()
        del array
        os.replace(scratch, path)
    except OSError as error:
        raise GanforgeError(f"cannot write {path}: {error.strerror or first_line(error)}") from None
    finally:
        scratch.unlink(missing_ok=True)
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def holdout_indices(count: int, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, held out): ascending indices of ``split_holdout``'s two parts of ``count`` images."""
    held_count = round(count * fraction)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(HOLDOUT_SEED))
    return order[held_count:].sort().values, order[:held_count].sort().values


class EpochSampler:
    """Batch indices as a pure function of the step.

    Each epoch is a fresh permutation drawn from (seed, epoch); the last partial
    batch is dropped. A run resumed at step k therefore sees exactly the
    batches an uninterrupted run would.
    """

    def __init__(self, num_images: int, batch_size: int, seed: int):
        if num_images < batch_size:
            raise GanforgeError(f"the dataset has {num_images} images, fewer than --batch-size {batch_size}")
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self.steps_per_epoch = num_images // batch_size
        self._epoch, self._order = -1, None
        self._flips_epoch, self._flips = -1, None

    def indices(self, step: int) -> torch.Tensor:
        """The (batch_size,) dataset indices of global step ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.num_images, generator=generator)
        start = position * self.batch_size
        return self._order[start : start + self.batch_size]

    def flips(self, step: int) -> torch.Tensor:
        """(batch_size,) bools: which of step ``step``'s images to mirror (``--mirror``), half of them at random,
        drawn per epoch from a stream of their own, so that the order of the images is the same with or without."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._flips_epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + MIRROR_STREAM)
            self._flips_epoch, self._flips = epoch, torch.rand(self.num_images, generator=generator) < 0.5
        start = position * self.batch_size
        return self._flips[start : start + self.batch_size]
