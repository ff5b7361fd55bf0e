"""ganforge: train, sample and evaluate GANs with PyTorch.

>>> import ganforge
>>> result = ganforge.train(ganforge.TrainConfig(model="dcgan", data="mnist", minutes=5))
>>> generator = ganforge.load(result.run_dir)  # the run's task's handle: its generator, config and classes
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
    "TASKS": "ganforge.tasks",
    "TrainResult": "ganforge.training",
    "TrainedGenerator": "ganforge.tasks.gan.handle",
    "TrainedTranslator": "ganforge.tasks.translation.handle",
    "create_app": "ganforge.serve",  # fastapi is imported when the app is made, not here
    "evaluate": "ganforge.commands",
    "export_dataset": "ganforge.tasks.gan.handle",
    "export_generator": "ganforge.export",
    "generate": "ganforge.tasks.gan.handle",
    "generate_images": "ganforge.sampling",
    "interpolate": "ganforge.tasks.gan.handle",
    "load": "ganforge.tasks",
    "load_checkpoint": "ganforge.checkpoint",
    "load_config": "ganforge.config",
    "load_dataset": "ganforge.data",
    "load_generator": "ganforge.tasks.gan.handle",
    "load_translator": "ganforge.tasks.translation.handle",
    "plot_run": "ganforge.plots",  # matplotlib is imported when plotting, not here
    "resume": "ganforge.training",
    "sample_noise": "ganforge.sampling",
    "save_config": "ganforge.config",
    "slerp": "ganforge.sampling",
    "train": "ganforge.training",
    "translate": "ganforge.tasks.translation.handle",
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
