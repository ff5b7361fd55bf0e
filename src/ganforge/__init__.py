"""ganforge: train, sample and evaluate GANs with PyTorch.

>>> import ganforge
>>> result = ganforge.train(ganforge.TrainConfig(model="dcgan", data="mnist", minutes=5))
>>> generator = ganforge.load_generator(result.run_dir)
>>> images = generator(torch.randn(16, generator.z_dim))  # (16, 1, 28, 28) in [-1, 1]
"""

__version__ = "0.1.0"

from ganforge.checkpoint import load_checkpoint, load_generator  # noqa: E402
from ganforge.config import TrainConfig, load_config, save_config  # noqa: E402
from ganforge.data import ImageDataset, load_dataset  # noqa: E402
from ganforge.errors import GanforgeError  # noqa: E402
from ganforge.export import export_generator  # noqa: E402
from ganforge.losses import LOSSES  # noqa: E402
from ganforge.metrics import evaluate  # noqa: E402
from ganforge.models import MODELS  # noqa: E402
from ganforge.plots import plot_run  # noqa: E402  (matplotlib is imported when plotting, not here)
from ganforge.sampling import (  # noqa: E402
    TrainedGenerator,
    generate,
    generate_images,
    interpolate,
    load,
    sample_noise,
    slerp,
    write_images,
)
from ganforge.serve import create_app  # noqa: E402  (fastapi is imported when the app is made, not here)
from ganforge.training import TrainResult, resume, train  # noqa: E402

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
