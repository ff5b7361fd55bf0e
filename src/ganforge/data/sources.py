"""Where a run's images come from: built-in datasets (torchvision's, CelebA, the embedded MNIST subset),
folders and .npz files, each kind one ``DataSource`` entry, all decoded into one uint8 tensor.

Built-in torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10, ...) are read
from a data root (or downloaded into ganforge's cache); MNIST falls back to a
10,000-image subset that ships inside the package when the full set is neither
on disk nor downloadable. Training then indexes batches from the tensor and
scales them on the training device, with no per-image Python in the loop.
"""

import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ganforge.data.dataset import ImageDataset, cache_home
from ganforge.data.folders import FOLDER_IMAGE_SIZE, decode_folder, load_image_folder
from ganforge.data.images import conform_images
from ganforge.data.memory import check_fits_in_memory
from ganforge.data.split import split_holdout
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.settings import short

log = logging.getLogger("ganforge")


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
        try:
            matched = source.matches(data)
        except (OSError, ValueError):  # a name no path can have: too long, or with a NUL byte
            matched = False
        if matched:
            return source
    raise UsageError(
        f"{short(data)} is neither a known dataset ({', '.join(BUILTIN_DATASETS)}), a folder nor an .npz file"
    )


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
