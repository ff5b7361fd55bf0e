"""ganforge: train, sample and evaluate GANs with PyTorch.

>>> import ganforge
>>> result = ganforge.train(ganforge.TrainConfig(model="dcgan", data="mnist", minutes=5))
>>> generator = ganforge.load(result.run_dir)  # the trained generator, its config and classes, loaded once
>>> images = generator.sample(64)  # (64, 1, 28, 28) uint8, cycling through the classes
"""

from ganforge.checkpoint import load_checkpoint, load_generator
from ganforge.config import TrainConfig, load_config, save_config
from ganforge.data import ImageDataset, load_dataset
from ganforge.errors import GanforgeError
from ganforge.export import export_generator
from ganforge.losses import LOSSES
from ganforge.metrics import evaluate
from ganforge.models import MODELS
from ganforge.plots import plot_run  # matplotlib is imported when plotting, not here
from ganforge.sampling import (
    TrainedGenerator,
    generate,
    generate_images,
    interpolate,
    load,
    sample_noise,
    slerp,
    write_images,
)
from ganforge.serve import create_app  # fastapi is imported when the app is made, not here
from ganforge.training import TrainResult, resume, train
from ganforge.version import __version__

__all__ = [
    "__version__",
    "GanforgeError",
    "ImageDataset",
    "LOSSES",
    "MODELS",
    "create_app",
    "evaluate",
    "export_generator",
    "TrainConfig",
    "TrainResult",
    "TrainedGenerator",
    "generate",
    "generate_images",
    "interpolate",
    "load",
    "load_checkpoint",
    "load_config",
    "load_dataset",
    "load_generator",
    "plot_run",
    "resume",
    "sample_noise",
    "save_config",
    "slerp",
    "train",
    "write_images",
]
