"""The data pipeline: decode a dataset once into a uint8 tensor, batch from memory.

- ``images.py``: how any image is read, resized and mapped to a model's range (one way, for every caller);
- ``sources.py``: the kinds of ``--data`` (built-in datasets, folders, .npz files), each one ``DataSource``;
- ``folders.py``: image folders, the decode cache and streaming from it when a folder is too big for memory;
- ``split.py``: the held-out share, and ``EpochSampler``'s batch order as a pure function of the step;
- ``memory.py``: the memory and disk budgets; ``dataset.py``: ``ImageDataset`` and the cache folder.
"""

from ganforge.data.dataset import ImageDataset, cache_home
from ganforge.data.folders import (
    FOLDER_CACHE_MIN,
    FOLDER_IMAGE_SIZE,
    cached_folder,
    decode_folder,
    decode_images,
    find_images,
    folder_cache_path,
    load_image_folder,
)
from ganforge.data.images import (
    IMAGE_EXTENSIONS,
    conform_images,
    convert_channels,
    list_images,
    open_image,
    read_image,
    resize_images,
    scale_images,
    to_uint8,
    typical_image_shape,
)
from ganforge.data.memory import check_fits_in_memory, fits_in_memory, memory_budget
from ganforge.data.sources import (
    BUILTIN_DATASETS,
    SOURCES,
    DataSource,
    data_root,
    load_dataset,
    load_npz,
    load_reference,
    load_torchvision_dataset,
    load_training_part,
    resolve_source,
)
from ganforge.data.split import HOLDOUT_SEED, EpochSampler, holdout_indices, split_holdout, streamed_part

__all__ = [
    "BUILTIN_DATASETS",
    "FOLDER_CACHE_MIN",
    "FOLDER_IMAGE_SIZE",
    "HOLDOUT_SEED",
    "IMAGE_EXTENSIONS",
    "SOURCES",
    "DataSource",
    "EpochSampler",
    "ImageDataset",
    "cache_home",
    "cached_folder",
    "check_fits_in_memory",
    "conform_images",
    "convert_channels",
    "data_root",
    "decode_folder",
    "decode_images",
    "find_images",
    "fits_in_memory",
    "folder_cache_path",
    "holdout_indices",
    "list_images",
    "load_dataset",
    "load_image_folder",
    "load_npz",
    "load_reference",
    "load_torchvision_dataset",
    "load_training_part",
    "memory_budget",
    "open_image",
    "read_image",
    "resize_images",
    "resolve_source",
    "scale_images",
    "split_holdout",
    "streamed_part",
    "to_uint8",
    "typical_image_shape",
]
