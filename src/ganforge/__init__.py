"""ganforge: train, sample and evaluate GANs with PyTorch.

>>> import ganforge
>>> result = ganforge.train(ganforge.TrainConfig(model="dcgan", data="mnist", minutes=5))
>>> generator = ganforge.load(result.run_dir)  # the trained generator, its config and classes, loaded once
>>> images = generator.sample(64)  # (64, 1, 28, 28) uint8, cycling through the classes

Each name is imported from its module when first used (PEP 562), so that
``import ganforge`` and the command line's ``--help`` do not wait for torch.
"""

import importlib

from ganforge.version import __version__

# The public names and the module that owns each.
EXPORTS = {
    "GanforgeError": "ganforge.errors",
    "ImageDataset": "ganforge.data",
    "LOSSES": "ganforge.losses",
    "MODELS": "ganforge.models",
    "TrainConfig": "ganforge.config",
    "TrainResult": "ganforge.training",
    "TrainedGenerator": "ganforge.sampling",
    "TrainedTranslator": "ganforge.translation",
    "create_app": "ganforge.serve",  # fastapi is imported when the app is made, not here
    "evaluate": "ganforge.metrics",
    "export_generator": "ganforge.export",
    "generate": "ganforge.sampling",
    "generate_images": "ganforge.sampling",
    "interpolate": "ganforge.sampling",
    "load": "ganforge.sampling",
    "load_checkpoint": "ganforge.checkpoint",
    "load_config": "ganforge.config",
    "load_dataset": "ganforge.data",
    "load_generator": "ganforge.checkpoint",
    "load_translator": "ganforge.translation",
    "plot_run": "ganforge.plots",  # matplotlib is imported when plotting, not here
    "resume": "ganforge.training",
    "sample_noise": "ganforge.sampling",
    "save_config": "ganforge.config",
    "slerp": "ganforge.sampling",
    "train": "ganforge.training",
    "translate": "ganforge.translation",
    "write_images": "ganforge.sampling",
}

__all__ = ["__version__", *EXPORTS]


def __getattr__(name: str):
    """Import a public name from its module on first use and keep it here."""
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(EXPORTS))
